package deviceplugin

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/informerstop"
)

// startPodInformer feeds the pod index with the pods bound to this node and
// returns once the index holds all of them.
func (p *Plugin) startPodInformer(ctx context.Context) (stop func(), err error) {
	stop, err = startNodePodInformer(ctx, p.client, p.opts.NodeName, cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onPodChange,
		UpdateFunc: func(_, obj any) { p.onPodChange(obj) },
		DeleteFunc: p.onPodDelete,
	})
	if err != nil {
		return nil, err
	}
	p.logger.Info("Pod index synced", "node", p.opts.NodeName)
	return stop, nil
}

// startNodePodInformer runs an informer of the pods bound to node and
// returns once handler has been given every pod of the initial list. That
// is the handler registration's sync, not the informer's: the informer is
// synced as soon as its own store holds the list, while its handlers are
// fed from a queue that can lag behind (far behind on a loaded node). Run
// sweeps the allocations and regions of pods the index does not know right
// after this returns, so returning on the store's sync let a slow handler
// turn every running container's limits into "pod gone" and delete them.
func startNodePodInformer(ctx context.Context, client kubernetes.Interface, node string, handler cache.ResourceEventHandler) (stop func(), err error) {
	selector := fields.OneTermEqualSelector("spec.nodeName", node).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	informer := factory.Core().V1().Pods().Informer()
	// Managed fields are large and unused here.
	if err := informer.SetTransform(func(obj any) (any, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			pod.ManagedFields = nil
		}
		return obj, nil
	}); err != nil {
		return nil, fmt.Errorf("set pod informer transform: %w", err)
	}
	reg, err := informer.AddEventHandler(handler)
	if err != nil {
		return nil, fmt.Errorf("add pod informer handler: %w", err)
	}
	factory.Start(ctx.Done())
	// client-go's reflector can sit out its retry back-off past the stop:
	// informerstop bounds the wait, so a node agent stops in time.
	stop = func() {
		informerstop.Shutdown(klog.FromContext(ctx), "pod index of node "+node, factory, informerstop.Timeout)
	}
	if !cache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		stop()
		return nil, fmt.Errorf("sync pods of node %s: %w", node, ctx.Err())
	}
	return stop, nil
}

func (p *Plugin) onPodChange(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	// The field selector already filters; this guards against a server (or
	// a fake client) that ignores it.
	if pod.Spec.NodeName != p.opts.NodeName {
		p.index.remove(pod.UID)
		return
	}
	p.logPodProblem(p.index.upsert(pod))
}

func (p *Plugin) onPodDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	p.index.remove(pod.UID)
	p.removeAllocations(pod.UID)
	if err := p.regions.removePod(pod.UID); err != nil {
		p.logger.Error(err, "Removing region directories of a deleted pod", "pod", klog.KObj(pod))
	}
}
