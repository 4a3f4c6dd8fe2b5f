package deviceplugin

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// TestAgentRestartedBetweenAllocateAndResolution: an agent that stops
// after Allocate and before the kubelet records the allocation resolves it
// when it comes back (from its allocation directory), keeps the containers
// it had resolved, and its preference skips them.
func TestAgentRestartedBetweenAllocateAndResolution(t *testing.T) {
	g0 := gpuUUID(0)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	slot := func(n int) string { return vgpu.SlotID(g0, n) }
	first := podSpec("first", t0, testNode, true, testContainer{name: "c", slots: []string{slot(0)}, mem: 1024})
	second := podSpec("second", t0.Add(time.Second), testNode, true, testContainer{name: "c", slots: []string{slot(1)}, mem: 3072})
	third := podSpec("third", t0.Add(2*time.Second), testNode, true, testContainer{name: "c", slots: []string{slot(2)}, mem: 1024})
	h := newHarness(t, newFakeGPUs(1, 4), first, second, third)
	h.startPlugin(1)
	resp1, err := h.kubelet.Allocate(h.ctx, []string{slot(0)})
	if err != nil {
		t.Fatal(err)
	}
	h.kubelet.Record(first, "c", []string{slot(0)})
	h.waitLimits(resp1)
	resp2, err := h.kubelet.Allocate(h.ctx, []string{slot(1)})
	if err != nil {
		t.Fatal(err)
	}
	h.stop()
	// The kubelet records the allocation while no agent runs.
	h.kubelet.Record(second, "c", []string{slot(1)})

	h.startPlugin(2)
	if got := identity(t, h.opts.StateDir, resp2); got != "uid-second/c" {
		t.Errorf("restored allocation resolved to %s, want uid-second/c", got)
	}
	if l := h.waitLimits(resp2); !slices.Equal(memLimits(l), []int64{3072}) {
		t.Errorf("second pod's limits %v, want [3072]", memLimits(l))
	}
	if got := identity(t, h.opts.StateDir, resp1); got != "uid-first/c" {
		t.Errorf("the first pod's allocation now resolves to %s", got)
	}
	// The kubelet admits the third pod, offering every free slot and the
	// served pods' slots too: the preference is the third pod's.
	h.kubelet.AddPod(third)
	preferred, err := h.kubelet.GetPreferredAllocation(h.ctx, []string{slot(0), slot(1), slot(2), slot(3)}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(preferred) != 1 || preferred[0] != slot(2) {
		t.Errorf("preferred %v, want the admitted pod's slot %s", preferred, slot(2))
	}
}

// TestBadRequestsGetClearErrorsAndEvents: what the slot IDs alone prove
// wrong is refused at Allocate, with a clear gRPC error (and an event on
// the pod when one is concerned).
func TestBadRequestsGetClearErrorsAndEvents(t *testing.T) {
	g0 := gpuUUID(0)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	slot := vgpu.SlotID(g0, 3)
	valid := func() *corev1.Pod {
		return podSpec("valid", t0, testNode, true, testContainer{name: "c", slots: []string{slot}})
	}
	tests := []struct {
		name      string
		pods      []*corev1.Pod
		unhealthy string
		request   *pluginapi.AllocateRequest
		code      codes.Code
		// wantInMsg must all appear in the error message.
		wantInMsg []string
		// eventPod is the pod that must get a Warning event; "" for none.
		eventPod string
	}{
		{
			name: "no container requests", request: &pluginapi.AllocateRequest{},
			code: codes.InvalidArgument, wantInMsg: []string{"no container requests"},
		},
		{
			name: "empty container request", request: allocReq(),
			code: codes.InvalidArgument, wantInMsg: []string{"names no slot IDs"},
		},
		{
			name: "malformed slot ID", request: allocReq("GPU-x"),
			code: codes.InvalidArgument, wantInMsg: []string{`"GPU-x"`, "not of the form"},
		},
		{
			name: "unknown GPU", request: allocReq("GPU-nope::0"),
			code: codes.NotFound, wantInMsg: []string{`"GPU-nope::0"`, "does not have"},
		},
		{
			name: "slot number beyond the GPU's slots", request: allocReq(vgpu.SlotID(g0, 10)),
			code: codes.NotFound, wantInMsg: []string{vgpu.SlotID(g0, 10), "has 10 slots"},
		},
		{
			name: "slot twice", request: allocReq(slot, slot),
			code: codes.InvalidArgument, wantInMsg: []string{slot, "twice"},
		},
		{
			name: "slots of an unhealthy GPU", pods: []*corev1.Pod{valid()}, unhealthy: g0,
			request: allocReq(slot), code: codes.FailedPrecondition,
			wantInMsg: []string{slot, "unhealthy", g0, "default/valid"}, eventPod: "valid",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objects := make([]runtime.Object, len(tc.pods))
			for i, pod := range tc.pods {
				objects[i] = pod
			}
			h := newHarness(t, newFakeGPUs(2, 10), objects...)
			if tc.unhealthy != "" {
				h.gpus.setHealthy(tc.unhealthy, false)
			}
			h.startPlugin(1)
			_, err := h.kubelet.AllocateRequest(h.ctx, tc.request)
			if status.Code(err) != tc.code {
				t.Fatalf("error %v, want code %s", err, tc.code)
			}
			for _, want := range tc.wantInMsg {
				if !strings.Contains(status.Convert(err).Message(), want) {
					t.Errorf("message %q does not mention %q", status.Convert(err).Message(), want)
				}
			}
			checkEvents(t, h.events(), eventReason, tc.eventPod)
		})
	}
}

// TestPodDependentRefusalsComeAtResolution: what depends on the pod cannot
// be decided at Allocate, which does not know the pod. Once the kubelet's
// record names the container, a pod whose annotations cannot be used, or
// that holds GPUs its assignment does not name, gets a refusal in its
// limits file (the library fails its CUDA calls with it),
// PreStartContainer fails with the same clear message, and the pod gets a
// Warning event. A container the kubelet never names is not started.
func TestPodDependentRefusalsComeAtResolution(t *testing.T) {
	g0, g1 := gpuUUID(0), gpuUUID(1)
	keys := annotations.DefaultKeys()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	slot := vgpu.SlotID(g0, 3)
	withAnnotation := func(pod *corev1.Pod, key, value string) *corev1.Pod {
		pod.Annotations[key] = value
		return pod
	}
	valid := func() *corev1.Pod {
		return podSpec("valid", t0, testNode, true, testContainer{name: "c", slots: []string{slot}})
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		// kubeletSlots are the slots the kubelet gives the pod's container c
		// (none: the kubelet never records the allocation).
		kubeletSlots []string
		code         codes.Code
		wantInMsg    []string
		reason       string // of the Warning event on the pod; "" for none
	}{
		{
			name: "the kubelet gives GPUs the assignment does not name", pod: valid(),
			kubeletSlots: []string{vgpu.SlotID(g1, 0)}, code: codes.FailedPrecondition,
			wantInMsg: []string{"default/valid", vgpu.SlotID(g1, 0), "assignment names GPUs " + g0}, reason: reasonDisagreement,
		},
		{
			name: "pod without assignment", pod: podSpec("bare", t0, testNode, false, testContainer{name: "c", slots: []string{slot}}),
			kubeletSlots: []string{slot}, code: codes.FailedPrecondition,
			wantInMsg: []string{"default/bare", "no assignment annotation"}, reason: reasonRefused,
		},
		{
			name: "undecodable assignment", pod: withAnnotation(valid(), keys.Assignment, `{"version":"v1","node":`),
			kubeletSlots: []string{slot}, code: codes.FailedPrecondition,
			wantInMsg: []string{"default/valid", keys.Assignment}, reason: reasonRefused,
		},
		{
			name: "assignment of an unknown version", pod: withAnnotation(valid(), keys.Assignment, `{"version":"v9","node":"node-a","containers":[]}`),
			kubeletSlots: []string{slot}, code: codes.FailedPrecondition,
			wantInMsg: []string{"default/valid", `"v9"`}, reason: reasonRefused,
		},
		{
			name: "undecodable allocated record", pod: withAnnotation(valid(), keys.Allocated, "not json"),
			kubeletSlots: []string{slot}, code: codes.FailedPrecondition,
			wantInMsg: []string{"default/valid", keys.Allocated}, reason: reasonRefused,
		},
		{
			name: "assignment for another node", pod: boundTo(testNode, podSpec("moved", t0, "node-b", true, testContainer{name: "c", slots: []string{slot}})),
			kubeletSlots: []string{slot}, code: codes.FailedPrecondition,
			wantInMsg: []string{"default/moved", `"node-b"`}, reason: reasonRefused,
		},
		{
			name: "no pod holds the slots", pod: valid(), code: codes.Unavailable,
			wantInMsg: []string{slot, "did not name the container"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newFakeGPUs(2, 10), tc.pod)
			h.startPlugin(1)
			allocated := tc.kubeletSlots
			if allocated == nil {
				allocated = []string{slot}
			}
			resp, err := h.kubelet.Allocate(h.ctx, allocated)
			if err != nil {
				t.Fatalf("Allocate decides nothing about the pod, but failed: %v", err)
			}
			if tc.kubeletSlots != nil {
				h.kubelet.Record(tc.pod, "c", tc.kubeletSlots)
			}
			err = h.kubelet.PreStartContainer(h.ctx, allocated)
			if status.Code(errors.Unwrap(err)) != tc.code {
				t.Fatalf("PreStartContainer: %v, want code %s", err, tc.code)
			}
			for _, want := range tc.wantInMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not mention %q", err, want)
				}
			}
			if tc.reason != "" {
				if l := h.waitLimits(resp); l.Refused == "" || !strings.Contains(l.Refused, tc.wantInMsg[0]) {
					t.Errorf("limits %+v, want a refusal naming %s", l, tc.wantInMsg[0])
				}
			} else if _, ok, _ := ContainerLimits(resp); ok {
				t.Error("limits were written for an allocation nobody holds")
			}
			// The event follows the resolution that PreStartContainer
			// waited for, so it may trail it a little.
			var events []string
			if tc.reason != "" {
				eventually(t, "a Warning event", func() bool { events = append(events, h.events()...); return len(events) > 0 })
			}
			checkEvents(t, append(events, h.events()...), tc.reason, tc.pod.Name)
			// The metrics say the same: resolved (refusals included) or
			// waiting, and disagreements with the assignment.
			m := h.plugin.metrics
			wantResolved, wantWaiting, wantDisagree := 1.0, 0.0, 0.0
			if tc.reason == "" {
				wantResolved, wantWaiting = 0, 1
			}
			if tc.reason == reasonDisagreement {
				wantDisagree = 1
			}
			eventually(t, "the waiting gauge", func() bool { return testutil.ToFloat64(m.waiting) == wantWaiting })
			if got := testutil.ToFloat64(m.resolved); got != wantResolved {
				t.Errorf("resolved %v, want %v", got, wantResolved)
			}
			if got := testutil.ToFloat64(m.disagreements); got != wantDisagree {
				t.Errorf("disagreements %v, want %v", got, wantDisagree)
			}
		})
	}
}

// checkEvents wants exactly one Warning event of reason naming pod, or
// none when reason or pod is "".
func checkEvents(t *testing.T, events []string, reason, pod string) {
	t.Helper()
	switch {
	case (reason == "" || pod == "") && len(events) > 0:
		t.Errorf("unexpected events %q", events)
	case reason == "" || pod == "":
	case len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+reason):
		t.Errorf("events %q, want one %s warning", events, reason)
	case !strings.Contains(events[0], "default/"+pod):
		t.Errorf("event %q does not name pod %s", events[0], pod)
	}
}

// boundTo binds a pod to another node than its assignment names.
func boundTo(node string, pod *corev1.Pod) *corev1.Pod {
	pod.Spec.NodeName = node
	return pod
}

// allocReq is an Allocate request for one container.
func allocReq(ids ...string) *pluginapi.AllocateRequest {
	return &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: ids}}}
}

// TestMultiContainerAllocateIsAllOrNothing: an Allocate of several
// containers with one bad request prepares no allocation at all; a good
// one gives each container its own allocation, resolved to its own name.
func TestMultiContainerAllocateIsAllOrNothing(t *testing.T) {
	g0 := gpuUUID(0)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := podSpec("two", t0, testNode, true,
		testContainer{name: "a", slots: []string{vgpu.SlotID(g0, 0)}},
		testContainer{name: "b", slots: []string{vgpu.SlotID(g0, 1)}})
	h := newHarness(t, newFakeGPUs(1, 4), pod)
	h.startPlugin(1)
	// The second request names a slot the GPU does not have.
	req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{vgpu.SlotID(g0, 0)}}, {DevicesIds: []string{vgpu.SlotID(g0, 1), vgpu.SlotID(g0, 9)}},
	}}
	if _, err := h.kubelet.AllocateRequest(h.ctx, req); status.Code(err) != codes.NotFound {
		t.Fatalf("error %v, want NotFound", err)
	}
	if keys, err := h.plugin.store.keys(); err != nil || len(keys) != 0 {
		t.Fatalf("allocations %v (%v) after a refused Allocate, want none", keys, err)
	}
	req.ContainerRequests[1].DevicesIds = []string{vgpu.SlotID(g0, 1)}
	resp, err := h.kubelet.AllocateRequest(h.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	h.kubelet.Record(pod, "a", []string{vgpu.SlotID(g0, 0)})
	h.kubelet.Record(pod, "b", []string{vgpu.SlotID(g0, 1)})
	for i, want := range []string{"uid-two/a", "uid-two/b"} {
		if got := identity(t, h.opts.StateDir, resp.GetContainerResponses()[i]); got != want {
			t.Errorf("container response %d served %s, want %s", i, got, want)
		}
	}
}
