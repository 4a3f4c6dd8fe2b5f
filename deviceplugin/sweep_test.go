package deviceplugin

import (
	"slices"
	"testing"
	"time"
)

// A restarted agent whose informer does not list a running pod (it lists
// from the API server's watch cache, which can lag) must not take the
// pod's containers their limits: the start sweep reads the pod from the
// API server before it deletes the allocation of a pod the index lacks.
// The informer is made to lag for that pod, so the sweep meets it with
// certainty.
func TestRestartKeepsLimitsOfARunningPodTheInformerLacks(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := podSpec("p", t0, testNode, true,
		testContainer{name: "c0", slots: []string{"GPU-00000000-0000-0000-0000-000000000000::0"}, mem: 4096, cores: 25},
		testContainer{name: "c1", slots: []string{"GPU-00000000-0000-0000-0000-000000000001::0"}, mem: 2048, cores: 10})
	h := newHarness(t, newFakeGPUs(2, 4), pod)
	lag := newInformerLag(h.client)
	h.startPlugin(1)
	allocs, err := h.kubelet.AdmitPod(h.ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	before := map[string][]int64{}
	for _, a := range allocs {
		before[a.Container] = memLimits(h.waitLimits(a.Response))
	}

	h.stop()
	lag.hold(pod.UID)
	defer lag.let(pod.UID)
	h.startPlugin(2) // Returns after the start sweep: it runs before the registration.
	for _, a := range allocs {
		l, ok, err := ContainerLimits(a.Response)
		if err != nil || !ok {
			t.Fatalf("container %s after the restart: limits %v, %v (want its limits kept)", a.Container, ok, err)
		}
		if got := memLimits(l); !slices.Equal(got, before[a.Container]) {
			t.Errorf("container %s after the restart: memory limits %v, want %v", a.Container, got, before[a.Container])
		}
	}
	if !h.plugin.index.hasPod(pod.UID) {
		t.Errorf("the sweep read pod %s from the API server but did not add it to the index", pod.Name)
	}
}
