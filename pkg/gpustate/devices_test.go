package gpustate

import (
	"math"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func testGPU(uuid string, index int) vgpu.GPU {
	return vgpu.GPU{UUID: uuid, Index: index, Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920, Slots: 10, Cores: 100, Healthy: true}
}

func inventoryNode(t *testing.T, name string, gpus ...vgpu.GPU) *corev1.Node {
	t.Helper()
	raw, err := annotations.EncodeInventory(annotations.Inventory{GPUs: gpus})
	if err != nil {
		t.Fatalf("encode inventory: %v", err)
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annotations.DefaultKeys().Inventory: raw}}}
}

// assigned is one device of a container's assignment: GPU uuid, memory, cores.
type assigned struct {
	uuid  string
	mem   int64
	cores int
}

func assignedPod(t *testing.T, name, node string, phase corev1.PodPhase, devices ...assigned) *corev1.Pod {
	t.Helper()
	ca := annotations.ContainerAssignment{Name: "main"}
	for _, d := range devices {
		ca.Devices = append(ca.Devices, annotations.AssignedDevice{UUID: d.uuid, SlotID: vgpu.SlotID(d.uuid, 0), MemoryMiB: d.mem, Cores: d.cores})
	}
	raw, err := annotations.EncodeAssignment(annotations.Assignment{Node: node, Containers: []annotations.ContainerAssignment{ca}})
	if err != nil {
		t.Fatalf("encode assignment: %v", err)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: map[string]string{annotations.DefaultKeys().Assignment: raw}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func podWithRawAssignment(name, raw string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: map[string]string{annotations.DefaultKeys().Assignment: raw}}}
}

func TestNodeDevices(t *testing.T) {
	keys := annotations.DefaultKeys()
	g0, g1 := testGPU("GPU-0", 0), testGPU("GPU-1", 1)
	tests := []struct {
		name        string
		node        *corev1.Node
		pods        []*corev1.Pod
		wantUsed    []vgpu.Usage // per GPU, in inventory order
		wantPodErrs []string     // substrings, one per expected pod error
		wantErr     string
	}{
		{
			name:     "no pods leaves every GPU free",
			node:     inventoryNode(t, "n1", g0, g1),
			wantUsed: []vgpu.Usage{{}, {}},
		},
		{
			name: "assigned pods are summed per GPU",
			node: inventoryNode(t, "n1", g0, g1),
			pods: []*corev1.Pod{
				assignedPod(t, "a", "n1", corev1.PodRunning, assigned{"GPU-0", 10240, 30}),
				assignedPod(t, "b", "n1", corev1.PodPending, assigned{"GPU-0", 2048, 0}, assigned{"GPU-1", 2048, 50}),
			},
			wantUsed: []vgpu.Usage{{Slots: 2, MemoryMiB: 12288, Cores: 30}, {Slots: 1, MemoryMiB: 2048, Cores: 50}},
		},
		{
			name: "terminal pods and pods of other nodes use nothing",
			node: inventoryNode(t, "n1", g0),
			pods: []*corev1.Pod{
				assignedPod(t, "done", "n1", corev1.PodSucceeded, assigned{"GPU-0", 10240, 30}),
				assignedPod(t, "failed", "n1", corev1.PodFailed, assigned{"GPU-0", 10240, 30}),
				assignedPod(t, "elsewhere", "n2", corev1.PodRunning, assigned{"GPU-0", 10240, 30}),
				nil,
			},
			wantUsed: []vgpu.Usage{{}},
		},
		{
			name: "an undecodable assignment is reported and counts nothing",
			node: inventoryNode(t, "n1", g0),
			pods: []*corev1.Pod{
				podWithRawAssignment("broken", "{not json"),
				podWithRawAssignment("future", `{"version":"v9","node":"n1","containers":[]}`),
				assignedPod(t, "ok", "n1", corev1.PodRunning, assigned{"GPU-0", 1024, 10}),
			},
			wantUsed:    []vgpu.Usage{{Slots: 1, MemoryMiB: 1024, Cores: 10}},
			wantPodErrs: []string{"ns/broken", "ns/future"},
		},
		{
			name: "a device the node does not have is reported; the others count",
			node: inventoryNode(t, "n1", g0),
			pods: []*corev1.Pod{
				assignedPod(t, "half", "n1", corev1.PodRunning, assigned{"GPU-0", 1024, 0}, assigned{"GPU-gone", 1024, 0}),
			},
			wantUsed:    []vgpu.Usage{{Slots: 1, MemoryMiB: 1024}},
			wantPodErrs: []string{"GPU-gone"},
		},
		{
			name: "absurd memory saturates instead of wrapping to free",
			node: inventoryNode(t, "n1", g0),
			pods: []*corev1.Pod{
				assignedPod(t, "huge1", "n1", corev1.PodRunning, assigned{"GPU-0", math.MaxInt64 - 1, 0}),
				assignedPod(t, "huge2", "n1", corev1.PodRunning, assigned{"GPU-0", math.MaxInt64 - 1, 0}),
			},
			wantUsed: []vgpu.Usage{{Slots: 2, MemoryMiB: math.MaxInt64}},
		},
		{
			name:     "a node without inventory has no GPUs",
			node:     &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
			pods:     []*corev1.Pod{assignedPod(t, "a", "plain", corev1.PodRunning, assigned{"GPU-0", 1, 0})},
			wantUsed: []vgpu.Usage{},
		},
		{
			name:    "an undecodable inventory is an error naming the node",
			node:    &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "bad-node", Annotations: map[string]string{keys.Inventory: `{"version":"v1","gpus":[{"uuid":""}]}`}}},
			wantErr: "bad-node",
		},
		{
			name:    "a nil node is an error",
			wantErr: "node is nil",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			devices, podErrs, err := NodeDevicesWithPodErrors(tt.node, tt.pods, keys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(devices) != len(tt.wantUsed) {
				t.Fatalf("got %d devices, want %d", len(devices), len(tt.wantUsed))
			}
			for i, want := range tt.wantUsed {
				if devices[i].Used != want {
					t.Errorf("device %s used = %+v, want %+v", devices[i].UUID, devices[i].Used, want)
				}
			}
			if len(podErrs) != len(tt.wantPodErrs) {
				t.Fatalf("pod errors = %v, want %d", podErrs, len(tt.wantPodErrs))
			}
			for i, want := range tt.wantPodErrs {
				if !strings.Contains(podErrs[i].Error(), want) {
					t.Errorf("pod error %d = %q, want it to name %q", i, podErrs[i].Error(), want)
				}
			}
			// NodeDevices logs the same problems and returns the same devices.
			plain, err := NodeDevices(tt.node, tt.pods, keys)
			if err != nil || len(plain) != len(devices) {
				t.Errorf("NodeDevices = %d devices, %v; want %d, nil", len(plain), err, len(devices))
			}
		})
	}
}
