package deviceplugin

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// informerLag makes a fake API server's pod informers lag behind it for
// chosen pods: a held pod is in the API server (a Get finds it, as the
// kubelet's own watch does) but no List returns it and every pod watch
// stops before its first event until it is released. That is a plugin's
// informer that has not delivered a pod the kubelet is already admitting,
// the pod arriving at the plugin only after its own Allocate.
type informerLag struct {
	mu   sync.Mutex
	held map[types.UID]chan struct{}
}

func newInformerLag(client *fake.Clientset) *informerLag {
	l := &informerLag{held: map[types.UID]chan struct{}{}}
	tracker := client.Tracker()
	client.PrependReactor("list", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		obj, err := tracker.List(action.GetResource(), corev1.SchemeGroupVersion.WithKind("Pod"), action.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		kept := list.Items[:0]
		for _, pod := range list.Items {
			if l.release(pod.UID) == nil {
				kept = append(kept, pod)
			}
		}
		list.Items = kept
		return true, list, nil
	})
	client.PrependWatchReactor("pods", func(action k8stesting.Action) (bool, watch.Interface, error) {
		w, err := tracker.Watch(action.GetResource(), action.GetNamespace(), metav1.ListOptions{})
		if err != nil {
			return true, nil, err
		}
		return true, l.wrap(w), nil
	})
	return l
}

// hold holds a pod that does not exist yet back from the informers.
func (l *informerLag) hold(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[uid] = make(chan struct{})
}

// let delivers a held pod (and what its watch events held up).
func (l *informerLag) let(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ch, ok := l.held[uid]; ok {
		close(ch)
		delete(l.held, uid)
	}
}

// release is the channel closed when uid is let go; nil when not held.
func (l *informerLag) release(uid types.UID) chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[uid]
}

// wrap forwards w's events in order, waiting at a held pod's event until
// the pod is let go (the whole stream lags, as an informer's does).
func (l *informerLag) wrap(w watch.Interface) watch.Interface {
	out := make(chan watch.Event)
	stop := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(out)
		for ev := range w.ResultChan() {
			if pod, ok := ev.Object.(*corev1.Pod); ok {
				if ch := l.release(pod.UID); ch != nil {
					select {
					case <-ch:
					case <-stop:
						return
					}
				}
			}
			select {
			case out <- ev:
			case <-stop:
				return
			}
		}
	}()
	return &lagWatch{out: out, stop: func() { once.Do(func() { close(stop); w.Stop() }) }}
}

type lagWatch struct {
	out  chan watch.Event
	stop func()
}

func (w *lagWatch) Stop()                          { w.stop() }
func (w *lagWatch) ResultChan() <-chan watch.Event { return w.out }
