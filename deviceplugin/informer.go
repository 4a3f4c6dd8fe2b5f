package deviceplugin

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/informerstop"
)

// startPodInformer feeds the pod index with the pods bound to this node and
// returns once the index holds all of them.
func (p *Plugin) startPodInformer(ctx context.Context) (stop func(), err error) {
	selector := fields.OneTermEqualSelector("spec.nodeName", p.opts.NodeName).String()
	factory := informers.NewSharedInformerFactoryWithOptions(p.client, 0,
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
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    p.onPodChange,
		UpdateFunc: func(_, obj any) { p.onPodChange(obj) },
		DeleteFunc: p.onPodDelete,
	}); err != nil {
		return nil, fmt.Errorf("add pod informer handler: %w", err)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		informerstop.Shutdown(p.logger, "pod index of node "+p.opts.NodeName, factory, informerstop.Timeout)
		return nil, fmt.Errorf("sync pods of node %s: %w", p.opts.NodeName, ctx.Err())
	}
	p.logger.Info("Pod index synced", "node", p.opts.NodeName)
	return func() {
		informerstop.Shutdown(p.logger, "pod index of node "+p.opts.NodeName, factory, informerstop.Timeout)
	}, nil
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
