package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// The regression test of the randomized test's intermittent failure: an
// agent restarted on a loaded node found its informer synced while the
// informer's handler had not yet put the node's pods into the index, and
// the sweep that follows at once deleted the resolved allocations (limits
// files) of running containers as if their pods were gone. Here the
// handler is held back until the test lets it go, which is that
// interleaving made certain: startNodePodInformer must not return before
// the handler has been given every pod. In a synctest bubble, so that
// "does not return" is decided with every goroutine idle, not by a timer.
func TestPodInformerReturnsOnlyOnceItsHandlerHasEveryPod(t *testing.T) {
	for _, n := range []int{1, 7} {
		t.Run(fmt.Sprintf("%d pods", n), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { checkInformerWaitsForHandler(t, n) })
		})
	}
}

func checkInformerWaitsForHandler(t *testing.T, n int) {
	var objs []runtime.Object
	var want []string
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name)},
			Spec: corev1.PodSpec{NodeName: "n1"}})
		want = append(want, name)
	}
	client := fake.NewSimpleClientset(objs...) //nolint:staticcheck // No field management needed.
	gate := make(chan struct{})
	var mu sync.Mutex
	var seen []string
	handler := cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		<-gate
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, obj.(*corev1.Pod).Name)
	}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		stop func()
		err  error
	}
	returned := make(chan result, 1)
	go func() {
		stop, err := startNodePodInformer(ctx, client, "n1", handler)
		returned <- result{stop, err}
	}()
	// A minute of the bubble's clock: far past the informer's own sync
	// (its store holds the list within its first poll), and every
	// goroutine is idle when Wait returns.
	time.Sleep(time.Minute)
	synctest.Wait()
	select {
	case r := <-returned:
		close(gate) // The held handler must end for the stop to.
		if r.stop != nil {
			defer func() { cancel(); r.stop() }()
		}
		t.Fatalf("startNodePodInformer returned (err %v) while its handler had been given none of the %d pods", r.err, n)
	default:
	}
	close(gate)
	r := <-returned
	if r.err != nil {
		t.Fatal(r.err)
	}
	// The informer's goroutines end with ctx: cancelled before the stop
	// waits for them.
	defer func() { cancel(); r.stop() }()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(seen)
	if !slices.Equal(seen, want) {
		t.Errorf("handler had pods %v when startNodePodInformer returned, want %v", seen, want)
	}
}
