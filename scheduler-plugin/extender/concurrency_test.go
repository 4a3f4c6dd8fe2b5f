package extender

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// checkNoOvercommit reads every pod from the API server and asserts that
// the assignments of the bound ones never take a GPU past its memory,
// cores or slots, that no slot ID is given twice, and that every pod is
// either bound with an assignment for its node or unbound without one.
// It returns the number of bound pods.
func checkNoOvercommit(t *testing.T, client *fake.Clientset, gpus []vgpu.GPU) int {
	t.Helper()
	pods, err := client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	byUUID := map[string]vgpu.GPU{}
	for _, g := range gpus {
		byUUID[g.UUID] = g
	}
	used := map[string]vgpu.Usage{}
	slotOwner := map[string]string{}
	bound := 0
	for i := range pods.Items {
		pod := &pods.Items[i]
		_, annotated := pod.Annotations[testKeys.Assignment]
		if pod.Spec.NodeName == "" {
			if annotated {
				t.Errorf("unbound pod %s carries an assignment", pod.Name)
			}
			continue
		}
		bound++
		a := podAssignment(t, pod)
		if !annotated || a.Node != pod.Spec.NodeName {
			t.Errorf("pod %s is bound to %s with assignment for %q", pod.Name, pod.Spec.NodeName, a.Node)
		}
		for _, c := range a.Containers {
			for _, d := range c.Devices {
				used[d.UUID] = used[d.UUID].Add(vgpu.Usage{Slots: 1, MemoryMiB: d.MemoryMiB, Cores: d.Cores})
				if owner, dup := slotOwner[d.SlotID]; dup {
					t.Errorf("slot %s is given to %s and %s/%s", d.SlotID, owner, pod.Name, c.Name)
				}
				slotOwner[d.SlotID] = pod.Name + "/" + c.Name
			}
		}
	}
	for uuid, u := range used {
		g, ok := byUUID[uuid]
		if !ok {
			t.Errorf("an assignment names unknown GPU %s", uuid)
			continue
		}
		if u.Slots > g.Slots || u.MemoryMiB > g.MemoryMiB || u.Cores > g.Cores {
			t.Errorf("GPU %s is overcommitted: %+v of %d slots, %d MiB, %d%% cores", uuid, u, g.Slots, g.MemoryMiB, g.Cores)
		}
	}
	return bound
}

// slowWrites makes every pod patch and binding take a little while, so that
// concurrent binds overlap while their writes are in flight.
func slowWrites(client *fake.Clientset, d time.Duration) {
	client.PrependReactor("*", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if v := action.GetVerb(); v == "patch" || v == "create" {
			time.Sleep(d)
		}
		return false, nil, nil
	})
}

// bindAll binds every pod to node from its own goroutine and returns how
// many binds succeeded.
func bindAll(ctx context.Context, e *Extender, pods []*corev1.Pod, node string) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, pod := range pods {
		wg.Go(func() {
			if res := e.Bind(ctx, bindArgs(pod, node)); res.Error == "" {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return ok
}

// uniformPods are pods of 1 GPU, 20 GiB and 30% cores: on a GPU of 80 GiB
// the cores allow 3 of them, so a node of G GPUs holds exactly 3*G.
func uniformPods(prefix string, n int) []*corev1.Pod {
	pods := make([]*corev1.Pod, n)
	for i := range pods {
		pods[i] = gpuPod(fmt.Sprintf("%s%03d", prefix, i), ctr{"main", 1, 20 * gib, 30})
	}
	return pods
}

func objects(node *corev1.Node, pods []*corev1.Pod) []runtime.Object {
	objs := []runtime.Object{node}
	for _, p := range pods {
		objs = append(objs, p)
	}
	return objs
}

func TestConcurrentBindsNeverShareCapacity(t *testing.T) {
	gpus := testGPUs("n", 4, a100, 80*gib, 10)
	tests := []struct {
		name string
		pods []*corev1.Pod
		// want is the exact number of pods that must be bound, or -1 when
		// only the invariants are checked.
		want int
	}{
		{name: "uniform pods fill the node exactly", pods: uniformPods("u", 60), want: 12},
		{name: "mixed pods", want: -1, pods: func() []*corev1.Pod {
			var pods []*corev1.Pod
			for i := range 20 {
				pods = append(pods,
					gpuPod(fmt.Sprintf("two%02d", i), ctr{"main", 2, 30 * gib, 40}),
					gpuPod(fmt.Sprintf("whole%02d", i), ctr{"main", 1, -1, -1}),
					gpuPod(fmt.Sprintf("pair%02d", i), ctr{"a", 1, 10 * gib, 10}, ctr{"b", 1, 10 * gib, 10}))
			}
			return pods
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := fakeCluster(objects(gpuNode(t, "n", gpus), tc.pods)...)
			slowWrites(client, time.Millisecond)
			e := startExtender(t, t.Context(), client, Options{})
			ok := bindAll(t.Context(), e, tc.pods, "n")
			bound := checkNoOvercommit(t, client, gpus)
			if ok != bound {
				t.Errorf("%d binds succeeded but %d pods are bound", ok, bound)
			}
			if tc.want >= 0 && bound != tc.want {
				t.Errorf("%d pods bound, want exactly %d (the node's capacity)", bound, tc.want)
			}
			if bound == 0 {
				t.Errorf("no pod was bound")
			}
			eventually(t, "every reservation is confirmed", func() bool { return e.state.inflightCount() == 0 })
		})
	}
}

// A new extender instance rebuilds the node's state from the pods'
// annotations: it hands out exactly the capacity the first one left.
func TestRestartRebuildsFromAnnotations(t *testing.T) {
	gpus := testGPUs("n", 4, a100, 80*gib, 10)
	pods := uniformPods("r", 30)
	// A pod whose annotation was written by a process that crashed before
	// it could create the Binding: its claim must still be counted.
	orphan := gpuPod("orphan", ctr{"main", 1, 20 * gib, 30})
	client := fakeCluster(objects(gpuNode(t, "n", gpus), append(pods, orphan))...)

	firstCtx, stopFirst := context.WithCancel(t.Context())
	first := startExtender(t, firstCtx, client, Options{})
	if got := bindAll(t.Context(), first, pods[:5], "n"); got != 5 {
		t.Fatalf("first instance bound %d of 5", got)
	}
	if _, _, err := first.reserve(orphan, mustRequest(t, orphan), "n"); err != nil {
		t.Fatal(err)
	}
	orphanValue := first.state.get("n", false).inflight[orphan.UID].value
	if err := first.patchAssignment(t.Context(), orphan, orphanValue); err != nil {
		t.Fatal(err)
	}
	stopFirst() // the crash: no Binding for the orphan, reservations lost

	second := startExtender(t, t.Context(), client, Options{})
	view := second.viewFor("n", gpuPod("probe"))
	var used vgpu.Usage
	for _, d := range view.devices {
		used = used.Add(d.Used)
	}
	if want := (vgpu.Usage{Slots: 6, MemoryMiB: 6 * 20 * gib, Cores: 6 * 30}); used != want {
		t.Fatalf("restarted instance sees %+v in use, want %+v (5 bound pods and the orphan)", used, want)
	}
	got := bindAll(t.Context(), second, pods[5:], "n")
	if got != 12-6 {
		t.Errorf("restarted instance bound %d more pods, want %d (capacity 12, 6 held)", got, 12-6)
	}
	// The orphan itself is rescheduled: its own stale claim does not count
	// against it, and its new assignment replaces the old one.
	evict := findBoundPod(t, client, pods)
	if err := client.CoreV1().Pods("default").Delete(t.Context(), evict, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted pod's capacity is free", func() bool { return freeSlots(second) == 4*10-12+1 })
	if res := second.Bind(t.Context(), bindArgs(orphan, "n")); res.Error != "" {
		t.Fatalf("orphan: %s", res.Error)
	}
	var unbound []*corev1.Pod
	for _, p := range pods {
		if p.Name != evict && apiPod(t, client, p.Name).Spec.NodeName == "" {
			unbound = append(unbound, p)
		}
	}
	if got := bindAll(t.Context(), second, unbound, "n"); got != 1 {
		t.Errorf("after the orphan's rebind %d more pods were bound, want 1 (the deleted pod's room)", got)
	}
	if bound := checkNoOvercommit(t, client, gpus); bound != 12 {
		t.Errorf("%d pods bound at the end, want 12", bound)
	}
}

func mustRequest(t *testing.T, pod *corev1.Pod) vgpu.PodRequest {
	t.Helper()
	req, err := gpustate.PodRequest(pod, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func findBoundPod(t *testing.T, client *fake.Clientset, pods []*corev1.Pod) string {
	t.Helper()
	for _, p := range pods {
		if apiPod(t, client, p.Name).Spec.NodeName != "" {
			return p.Name
		}
	}
	t.Fatal("no bound pod")
	return ""
}

func freeSlots(e *Extender) int {
	free := 0
	for _, d := range e.viewFor("n", &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID("probe")}}).devices {
		free += d.Free().Slots
	}
	return free
}
