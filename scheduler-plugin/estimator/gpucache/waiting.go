package gpucache

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
)

// WaitingPods counts the pods waiting for vGPUs (gpustate.WaitsForGPUs)
// from pod events, so that a scrape reads a number instead of scanning
// every pod: a member may hold tens of thousands of pods, nearly all bound,
// and a bound pod's event costs one map delete here.
type WaitingPods struct {
	cfg config.Config

	mu      sync.Mutex
	waiting map[string]struct{}
}

// NewWaitingPods returns an empty tracker for the configuration's resources
// and annotations.
func NewWaitingPods(cfg config.Config) *WaitingPods {
	return &WaitingPods{cfg: cfg, waiting: map[string]struct{}{}}
}

// AddEventHandlers subscribes the tracker to the factory's pod informer.
// Call it before the factory is started; the returned function reports
// when the informer's initial list has reached the tracker.
func (w *WaitingPods) AddEventHandlers(factory informers.SharedInformerFactory) (toolscache.InformerSynced, error) {
	reg, err := factory.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.handle(obj, false) },
		UpdateFunc: func(_, obj any) { w.handle(obj, false) },
		DeleteFunc: func(obj any) { w.handle(obj, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe waiting-pod count to pods: %w", err)
	}
	return reg.HasSynced, nil
}

func (w *WaitingPods) handle(obj any, deleted bool) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		klog.ErrorS(nil, "Waiting-pod count got an object that is not a Pod", "type", fmt.Sprintf("%T", obj))
		return
	}
	if deleted {
		w.Delete(pod)
		return
	}
	w.Upsert(pod)
}

// Upsert records a pod's current object.
func (w *WaitingPods) Upsert(pod *corev1.Pod) {
	key := pod.Namespace + "/" + pod.Name
	// Most events are of bound pods, which WaitsForGPUs decides from
	// spec.nodeName alone, without parsing requests or annotations.
	waits := gpustate.WaitsForGPUs(pod, w.cfg)
	w.mu.Lock()
	defer w.mu.Unlock()
	if waits {
		w.waiting[key] = struct{}{}
	} else {
		delete(w.waiting, key)
	}
}

// Delete forgets a pod.
func (w *WaitingPods) Delete(pod *corev1.Pod) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waiting, pod.Namespace+"/"+pod.Name)
}

// Count is the number of pods waiting for vGPUs now.
func (w *WaitingPods) Count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waiting)
}
