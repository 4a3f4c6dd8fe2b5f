package env

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// checkMember is a member with no servers, for the checks that read
// listed objects only.
func checkMember() *Member {
	return &Member{name: "m", env: &Env{cfg: config.Default()}}
}

// gpuNode is a node with one 80 GiB GPU of 10 slots and room for pods.
func gpuNode(t *testing.T, name string, pods int64) corev1.Node {
	t.Helper()
	inv, err := annotations.EncodeInventory(annotations.Inventory{GPUs: []vgpu.GPU{
		{UUID: "GPU-" + name, Model: "A100", MemoryMiB: 80 * 1024, Slots: 10, Cores: 100, Healthy: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	keys := config.Default().Keys()
	return corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{keys.Inventory: inv}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourcePods: *resource.NewQuantity(pods, resource.DecimalSI),
			corev1.ResourceCPU:  resource.MustParse("4"),
			"tessera.io/vgpu":   resource.MustParse("10"), "tessera.io/vgpu-memory": resource.MustParse("81920"), "tessera.io/vgpu-cores": resource.MustParse("100"),
		}},
	}
}

// assignedPod is a live pod on node holding memMiB of its GPU's slot n.
func assignedPod(t *testing.T, name, node string, n int, memMiB int64, phase corev1.PodPhase) *corev1.Pod {
	t.Helper()
	a, err := annotations.EncodeAssignment(annotations.Assignment{Node: node, Containers: []annotations.ContainerAssignment{{
		Name: "main", Devices: []annotations.AssignedDevice{{UUID: "GPU-" + node, SlotID: vgpu.SlotID("GPU-"+node, n), MemoryMiB: memMiB}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	rl := GPURequest{GPUs: 1, MemoryMiB: memMiB}.Resources(config.Default().Resources)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Annotations: map[string]string{config.Default().Keys().Assignment: a}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{Requests: rl, Limits: rl}}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

// TestExact: the per-node minimum of the GPU fit, the free resources and
// the pod count, summed; finished pods hold nothing.
func TestExact(t *testing.T) {
	names := config.Default().Resources
	for _, tc := range []struct {
		name    string
		nodes   []corev1.Node
		pods    []*corev1.Pod
		request corev1.ResourceList
		want    int32
	}{
		{"empty GPU: memory decides", []corev1.Node{gpuNode(t, "a", 110)}, nil,
			GPURequest{GPUs: 1, MemoryMiB: 30 * 1024}.Resources(names), 2},
		{"empty GPU: slots decide", []corev1.Node{gpuNode(t, "a", 110)}, nil,
			GPURequest{GPUs: 1, MemoryMiB: 1024}.Resources(names), 10},
		{"pod count decides", []corev1.Node{gpuNode(t, "a", 3)}, []*corev1.Pod{assignedPod(t, "p", "a", 0, 1024, corev1.PodRunning)},
			GPURequest{GPUs: 1, MemoryMiB: 1024}.Resources(names), 2},
		{"live pods use the GPU, a failed one does not", []corev1.Node{gpuNode(t, "a", 110), gpuNode(t, "b", 110)}, []*corev1.Pod{
			assignedPod(t, "p", "a", 0, 60*1024, corev1.PodRunning), assignedPod(t, "q", "b", 0, 60*1024, corev1.PodFailed)},
			GPURequest{GPUs: 1, MemoryMiB: 30 * 1024}.Resources(names), 0 + 2},
		{"two GPUs per replica on one-GPU nodes", []corev1.Node{gpuNode(t, "a", 110), gpuNode(t, "b", 110)}, nil,
			GPURequest{GPUs: 2, MemoryMiB: 2048}.Resources(names), 0},
		{"cpu decides", []corev1.Node{gpuNode(t, "a", 110)}, nil,
			corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m"), "tessera.io/vgpu": resource.MustParse("1"), "tessera.io/vgpu-memory": resource.MustParse("1024")}, 2},
		{"whole GPU without memory", []corev1.Node{gpuNode(t, "a", 110)}, nil,
			corev1.ResourceList{"tessera.io/vgpu": resource.MustParse("1")}, 1},
	} {
		got, err := checkMember().exact(memberState{nodes: tc.nodes, pods: tc.pods}, tc.request)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d, %v; want %d", tc.name, got, err, tc.want)
		}
	}
}

// TestCheckGPUs: an overcommitted GPU and a slot given twice are
// violations; finished pods do not count.
func TestCheckGPUs(t *testing.T) {
	for _, tc := range []struct {
		name string
		pods []*corev1.Pod
		want []string
	}{
		{"fits", []*corev1.Pod{assignedPod(t, "p", "a", 0, 40*1024, corev1.PodRunning), assignedPod(t, "q", "a", 1, 40*1024, corev1.PodPending)}, nil},
		{"memory over", []*corev1.Pod{assignedPod(t, "p", "a", 0, 50*1024, corev1.PodRunning), assignedPod(t, "q", "a", 1, 40*1024, corev1.PodRunning)},
			[]string{"overcommitted"}},
		{"slot twice", []*corev1.Pod{assignedPod(t, "p", "a", 3, 1024, corev1.PodRunning), assignedPod(t, "q", "a", 3, 1024, corev1.PodPending)},
			[]string{"assigned to both p and q"}},
		{"a failed pod's slot is free", []*corev1.Pod{assignedPod(t, "p", "a", 3, 70*1024, corev1.PodFailed), assignedPod(t, "q", "a", 3, 70*1024, corev1.PodRunning)}, nil},
	} {
		var f Findings
		checkMember().checkGPUs(&f, memberState{nodes: []corev1.Node{gpuNode(t, "a", 110)}, pods: tc.pods})
		if len(f.Violations) != len(tc.want) {
			t.Errorf("%s: violations %q, want %d", tc.name, f.Violations, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(f.Violations[i], w) {
				t.Errorf("%s: violation %q, want it to say %q", tc.name, f.Violations[i], w)
			}
		}
	}
}
