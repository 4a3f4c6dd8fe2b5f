package nodepublish

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

const testNode = "gpu-node-1"

// fakeDevices is a DeviceSource whose GPUs the test sets.
type fakeDevices struct {
	mu   sync.Mutex
	gpus []vgpu.GPU
	subs map[int]chan struct{}
	next int
}

func newFakeDevices(gpus []vgpu.GPU) *fakeDevices {
	return &fakeDevices{gpus: gpus, subs: map[int]chan struct{}{}}
}

func (f *fakeDevices) GPUs() []vgpu.GPU {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.gpus)
}

func (f *fakeDevices) Subscribe() (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	ch := make(chan struct{}, 1)
	f.subs[id] = ch
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

// set replaces the GPUs (nil leaves them) and notifies the subscribers as
// the tracker does: a non-blocking send into a one-slot channel.
func (f *fakeDevices) set(gpus []vgpu.GPU) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gpus != nil {
		f.gpus = gpus
	}
	for _, ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// eventLog is an EventRecorder that keeps "Type Reason Message" lines.
type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (e *eventLog) Event(_ runtime.Object, eventType, reason, message string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.events = append(e.events, eventType+" "+reason+" "+message)
}

func (e *eventLog) Eventf(o runtime.Object, eventType, reason, format string, args ...any) {
	e.Event(o, eventType, reason, fmt.Sprintf(format, args...))
}

func (e *eventLog) AnnotatedEventf(o runtime.Object, _ map[string]string, eventType, reason, format string, args ...any) {
	e.Eventf(o, eventType, reason, format, args...)
}

// all returns a copy of every event so far.
func (e *eventLog) all() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.events)
}

// find returns the first event containing every one of the substrings.
func (e *eventLog) find(subs ...string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.events {
		if containsAll(ev, subs...) {
			return ev, true
		}
	}
	return "", false
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func testGPUs() []vgpu.GPU {
	return []vgpu.GPU{
		{UUID: "GPU-bbbb", Index: 1, Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Slots: 10, Cores: 100, NUMANode: 0, Healthy: true},
		{UUID: "GPU-aaaa", Index: 0, Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Slots: 10, Cores: 100, NUMANode: 0, Healthy: true},
	}
}

func emptyNode() *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode, UID: "uid-1"}}
}

// harness runs a Publisher against a fake clientset.
type harness struct {
	t         *testing.T
	client    *fake.Clientset
	devices   *fakeDevices
	events    *eventLog
	publisher *Publisher
	stop      context.CancelFunc
	done      chan error
	watching  chan struct{}
}

// waitWatching blocks until the publisher's informer watches the Node.
func (h *harness) waitWatching() {
	h.t.Helper()
	select {
	case <-h.watching:
	case <-time.After(10 * time.Second):
		h.t.Fatal("the publisher never started watching the Node")
	}
}

func startHarness(t *testing.T, node *corev1.Node, gpus []vgpu.GPU, setup func(*fake.Clientset)) *harness {
	t.Helper()
	var objs []runtime.Object
	if node != nil {
		objs = append(objs, node)
	}
	client := fake.NewClientset(objs...)
	if setup != nil {
		setup(client)
	}
	// The fake clientset drops changes made between the informer's list
	// and its watch (a real API server replays them from the list's
	// resourceVersion), so tests change the Node only once the watch exists.
	watching := make(chan struct{})
	var once sync.Once
	client.PrependWatchReactor("nodes", func(a clienttesting.Action) (bool, watch.Interface, error) {
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace())
		once.Do(func() { close(watching) })
		return true, w, err
	})
	h := &harness{t: t, client: client, devices: newFakeDevices(gpus), events: &eventLog{}, done: make(chan error, 1), watching: watching}
	p, err := New(Options{
		NodeName:       testNode,
		Keys:           annotations.DefaultKeys(),
		Resources:      config.Default().Resources,
		RetryBaseDelay: 5 * time.Millisecond,
		RetryMaxDelay:  50 * time.Millisecond,
	}, h.devices, client, h.events)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.publisher = p
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	go func() { h.done <- p.Run(ctx) }()
	t.Cleanup(h.shutdown)
	return h
}

// shutdown cancels Run and requires it to return nil promptly.
func (h *harness) shutdown() {
	h.stop()
	select {
	case err, ok := <-h.done:
		if ok && err != nil {
			h.t.Errorf("Run returned %v after cancel; want nil", err)
		}
		if ok {
			close(h.done)
		}
	case <-time.After(10 * time.Second):
		h.t.Errorf("Run did not return within 10s of cancel")
	}
}

func (h *harness) node() *corev1.Node {
	h.t.Helper()
	n, err := h.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("nodes"), "", testNode)
	if err != nil {
		return nil
	}
	return n.(*corev1.Node)
}

// waitFor polls until cond holds; it fails the test with what describe
// says about the node after a generous deadline.
func (h *harness) waitFor(what string, cond func(*corev1.Node) bool) {
	h.t.Helper()
	h.poll(what, func() bool {
		n := h.node()
		return n != nil && cond(n)
	})
}

// poll waits for cond with a generous deadline: it waits for an outcome, it
// does not time anything.
func (h *harness) poll(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s; node is %+v; events %v", what, h.node(), h.events.all())
}

func (h *harness) patchCount() int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetVerb() == "patch" && a.GetResource().Resource == "nodes" {
			n++
		}
	}
	return n
}

// published reports whether the node carries exactly the given GPUs and
// the given totals in capacity and allocatable.
func published(gpus []vgpu.GPU, memMiB, cores int64) func(*corev1.Node) bool {
	want := slices.Clone(gpus)
	slices.SortFunc(want, func(a, b vgpu.GPU) int { return a.Index - b.Index })
	return func(n *corev1.Node) bool {
		inv, err := annotations.DecodeInventory(n.Annotations[annotations.DefaultKeys().Inventory])
		if err != nil || !slices.Equal(inv.GPUs, want) {
			return false
		}
		res := config.Default().Resources
		for _, list := range []corev1.ResourceList{n.Status.Capacity, n.Status.Allocatable} {
			m, c := list[corev1.ResourceName(res.Memory)], list[corev1.ResourceName(res.Cores)]
			if m.Value() != memMiB || c.Value() != cores {
				return false
			}
		}
		return true
	}
}

// failPatches makes the first n patches of the given subresource fail.
func failPatches(subresource string, n int) func(*fake.Clientset) {
	return func(c *fake.Clientset) {
		var mu sync.Mutex
		c.PrependReactor("patch", "nodes", func(a clienttesting.Action) (bool, runtime.Object, error) {
			mu.Lock()
			defer mu.Unlock()
			if a.GetSubresource() != subresource || n == 0 {
				return false, nil, nil
			}
			n--
			return true, nil, fmt.Errorf("injected API failure")
		})
	}
}
