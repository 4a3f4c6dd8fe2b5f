package deviceplugin

import (
	"context"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/klog/v2"
)

// podRefresher brings the pod index up to date with a consistent read from
// the API server before a kubelet call is matched to a pod.
//
// Why: the kubelet and this plugin watch the node's pods separately. When
// the kubelet admits a pod that the plugin's informer has not delivered
// yet, the oldest waiting pod the plugin knows is another pod, and it
// would be handed that pod's GPUs and limits (and the admitted pod later
// the first one's). A List reads from etcd, so after it the plugin knows
// every pod the kubelet can have seen.
type podRefresher struct {
	mu sync.Mutex
	// lastStart is when the last successful List began.
	lastStart time.Time
}

// refreshPods adds to the index the pods of this node that its informer has
// not delivered yet. Concurrent callers share a List that began after they
// asked, so a burst of kubelet calls costs one round trip, not one each.
// A failed List is logged and matching goes on with the informer's view.
func (p *Plugin) refreshPods(ctx context.Context) {
	asked := time.Now()
	p.refresher.mu.Lock()
	defer p.refresher.mu.Unlock()
	if p.refresher.lastStart.After(asked) {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.tune.refreshTimeout)
	defer cancel()
	pods, err := p.client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", p.opts.NodeName).String(),
	})
	if err != nil {
		p.logger.Error(err, "Listing the node's pods before matching a kubelet call; matching with the informer's view",
			"node", p.opts.NodeName)
		return
	}
	p.refresher.lastStart = start
	added := 0
	for i := range pods.Items {
		pod := &pods.Items[i]
		// Known pods are left to the informer, whose view is never older
		// than this List's for them; only missing ones are added.
		if pod.Spec.NodeName == p.opts.NodeName && p.index.addIfUnknown(pod) {
			added++
		}
	}
	if added > 0 {
		p.logger.V(2).Info("Added pods the informer had not delivered yet", "node", p.opts.NodeName, "pods", added)
	}
}

// logPodProblem logs, once, a pod whose annotations make it unmatchable.
func (p *Plugin) logPodProblem(entry, previous *podEntry) {
	if entry.problem != "" && !entry.terminal && (previous == nil || previous.problem != entry.problem) {
		p.logger.Error(nil, "Pod on this node has GPU annotations that cannot be used; its GPU containers will be refused",
			"pod", klog.KObj(entry.pod), "problem", entry.problem)
	}
}

// podName is a pod's namespace and name, as the kubelet's PodResources API
// names it.
type podName struct{ namespace, name string }

// fetchPods adds to the index the named pods it does not know yet, each
// read by name from the API server. The kubelet names a pod it is admitting
// through PodResources, and it only admits pods the API server has, so this
// finds the pod whatever the informer's lag: one Get per missing pod, not a
// List of the node. A pod not found (deleted meanwhile) or a failed Get is
// left to the next attempt. It reports whether it added any.
func (p *Plugin) fetchPods(ctx context.Context, names []podName) bool {
	added := false
	for _, n := range names {
		if len(p.index.byName(n.namespace, n.name)) > 0 {
			continue
		}
		gctx, cancel := context.WithTimeout(ctx, p.tune.refreshTimeout)
		pod, err := p.client.CoreV1().Pods(n.namespace).Get(gctx, n.name, metav1.GetOptions{})
		cancel()
		if err != nil {
			p.logger.V(2).Info("Reading a pod the kubelet names but the informer has not delivered", "pod", n.namespace+"/"+n.name, "err", err)
			continue
		}
		if pod.Spec.NodeName == p.opts.NodeName && p.index.addIfUnknown(pod) {
			p.logger.V(2).Info("Added a pod the kubelet names before the informer delivered it", "pod", klog.KObj(pod))
			added = true
		}
	}
	return added
}
