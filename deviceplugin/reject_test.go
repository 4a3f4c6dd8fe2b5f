package deviceplugin

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestRestartedPluginDoesNotServeAgain(t *testing.T) {
	g0 := gpuUUID(0)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	first := podSpec("first", t0, testNode, true, testContainer{name: "c", slots: []string{vgpu.SlotID(g0, 0)}})
	second := podSpec("second", t0.Add(time.Second), testNode, true, testContainer{name: "c", slots: []string{vgpu.SlotID(g0, 1)}})
	h := newHarness(t, newFakeGPUs(1, 4), first, second)
	h.startPlugin(1)
	if _, err := h.kubelet.Allocate(h.ctx, []string{vgpu.SlotID(g0, 0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Allocated annotation of the first pod", func() bool {
		pod, err := h.client.CoreV1().Pods("default").Get(h.ctx, "first", metav1.GetOptions{})
		return err == nil && pod.Annotations[annotations.DefaultKeys().Allocated] != ""
	})
	h.stop()

	// A new plugin process knows only what the annotations say.
	h.startPlugin(2)
	// The kubelet offers both pods' slots and more: the preference must
	// skip the served (older) pod.
	preferred, err := h.kubelet.GetPreferredAllocation(h.ctx,
		[]string{vgpu.SlotID(g0, 0), vgpu.SlotID(g0, 1), vgpu.SlotID(g0, 2)}, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := vgpu.SlotID(g0, 1); len(preferred) != 1 || preferred[0] != want {
		t.Errorf("preferred %v, want the unserved pod's slot %s", preferred, want)
	}
	// Other slots of the same GPU go to the unserved pod, not the older
	// served one.
	resp, err := h.kubelet.Allocate(h.ctx, []string{vgpu.SlotID(g0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	if got := identity(t, h.opts.StateDir, resp); got != "uid-second/c" {
		t.Errorf("served %s, want uid-second/c", got)
	}
	// The served container's own slots are refused: nothing waits for them.
	_, err = h.kubelet.Allocate(h.ctx, []string{vgpu.SlotID(g0, 0)})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "already served") {
		t.Errorf("Allocate of a served container's slots: %v, want FailedPrecondition naming it as served", err)
	}
}

func TestBadRequestsGetClearErrorsAndEvents(t *testing.T) {
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
		name      string
		pods      []*corev1.Pod
		unhealthy string
		request   *pluginapi.AllocateRequest
		code      codes.Code
		// wantInMsg must all appear in the error message.
		wantInMsg []string
		// eventPod is the pod that must get a Warning event; "" for none.
		eventPod string
		// validAfter: the pod "valid" must still be allocatable afterwards
		// (the refusal marked nothing served).
		validAfter bool
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
			// The oldest container waiting for as many slots is the likely
			// one the kubelet is admitting: it is named and gets the event.
			name: "no pod waits for the slots", pods: []*corev1.Pod{valid()}, request: allocReq(vgpu.SlotID(g1, 0)),
			code: codes.NotFound, wantInMsg: []string{vgpu.SlotID(g1, 0), "match no container", "default/valid", slot},
			eventPod: "valid", validAfter: true,
		},
		{
			name: "no pod at all", request: allocReq(vgpu.SlotID(g1, 0)),
			code: codes.NotFound, wantInMsg: []string{vgpu.SlotID(g1, 0), "no pod on this node waits"},
		},
		{
			name:    "pod without assignment",
			pods:    []*corev1.Pod{podSpec("bare", t0, testNode, false, testContainer{name: "c", slots: []string{slot}})},
			request: allocReq(slot), code: codes.FailedPrecondition,
			wantInMsg: []string{slot, "default/bare", "no assignment annotation"}, eventPod: "bare",
		},
		{
			name:    "undecodable assignment",
			pods:    []*corev1.Pod{withAnnotation(valid(), keys.Assignment, `{"version":"v1","node":`)},
			request: allocReq(slot), code: codes.FailedPrecondition,
			wantInMsg: []string{slot, "default/valid", keys.Assignment}, eventPod: "valid",
		},
		{
			name:    "assignment of an unknown version",
			pods:    []*corev1.Pod{withAnnotation(valid(), keys.Assignment, `{"version":"v9","node":"node-a","containers":[]}`)},
			request: allocReq(slot), code: codes.FailedPrecondition,
			wantInMsg: []string{"default/valid", `"v9"`}, eventPod: "valid",
		},
		{
			name:    "undecodable allocated record",
			pods:    []*corev1.Pod{withAnnotation(valid(), keys.Allocated, "not json")},
			request: allocReq(slot), code: codes.FailedPrecondition,
			wantInMsg: []string{"default/valid", keys.Allocated}, eventPod: "valid",
		},
		{
			name:    "assignment for another node",
			pods:    []*corev1.Pod{boundTo(testNode, podSpec("moved", t0, "node-b", true, testContainer{name: "c", slots: []string{slot}}))},
			request: allocReq(slot), code: codes.FailedPrecondition,
			wantInMsg: []string{"default/moved", `"node-b"`}, eventPod: "moved",
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
			events := h.events()
			switch {
			case tc.eventPod == "" && len(events) > 0:
				t.Errorf("unexpected events %q", events)
			case tc.eventPod != "" && (len(events) != 1 || !strings.HasPrefix(events[0], "Warning "+eventReason)):
				t.Errorf("events %q, want one %s warning", events, eventReason)
			}
			if tc.eventPod != "" && len(events) == 1 && !strings.Contains(events[0], "default/"+tc.eventPod) {
				t.Errorf("event %q does not name pod %s", events[0], tc.eventPod)
			}
			if tc.validAfter {
				if _, err := h.kubelet.Allocate(h.ctx, []string{slot}); err != nil {
					t.Errorf("the valid pod is no longer allocatable: %v", err)
				}
			}
		})
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

func TestMultiContainerAllocateIsAllOrNothing(t *testing.T) {
	g0 := gpuUUID(0)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := podSpec("two", t0, testNode, true,
		testContainer{name: "a", slots: []string{vgpu.SlotID(g0, 0)}},
		testContainer{name: "b", slots: []string{vgpu.SlotID(g0, 1)}})
	h := newHarness(t, newFakeGPUs(1, 4), pod)
	h.startPlugin(1)
	// The second request matches nothing: the first must not stay served.
	req := &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{
		{DevicesIds: []string{vgpu.SlotID(g0, 0)}}, {DevicesIds: []string{vgpu.SlotID(g0, 1), vgpu.SlotID(g0, 2)}},
	}}
	if _, err := h.kubelet.AllocateRequest(h.ctx, req); status.Code(err) != codes.NotFound {
		t.Fatalf("error %v, want NotFound", err)
	}
	req.ContainerRequests[1].DevicesIds = []string{vgpu.SlotID(g0, 1)}
	resp, err := h.kubelet.AllocateRequest(h.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"uid-two/a", "uid-two/b"} {
		if got := identity(t, h.opts.StateDir, resp.GetContainerResponses()[i]); got != want {
			t.Errorf("container response %d served %s, want %s", i, got, want)
		}
	}
	var st interface{ GRPCStatus() *status.Status }
	if _, err := h.kubelet.AllocateRequest(h.ctx, req); !errors.As(err, &st) {
		t.Errorf("allocating the served pod again: %v, want a gRPC status error", err)
	}
}
