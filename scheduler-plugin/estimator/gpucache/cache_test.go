package gpucache

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func gpu(uuid string, model string) vgpu.GPU {
	return vgpu.GPU{UUID: uuid, Model: model, MemoryMiB: 1000, Slots: 4, Cores: 100, Healthy: true}
}

func node(t *testing.T, name string, gpus ...vgpu.GPU) *corev1.Node {
	t.Helper()
	raw, err := annotations.EncodeInventory(annotations.Inventory{GPUs: gpus})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{annotations.DefaultKeys().Inventory: raw}}}
}

func pod(t *testing.T, name, nodeName, assignedTo, uuid string, mem int64) *corev1.Pod {
	t.Helper()
	raw, err := annotations.EncodeAssignment(annotations.Assignment{Node: assignedTo, Containers: []annotations.ContainerAssignment{{
		Name: "c", Devices: []annotations.AssignedDevice{{UUID: uuid, SlotID: vgpu.SlotID(uuid, 0), MemoryMiB: mem}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: map[string]string{annotations.DefaultKeys().Assignment: raw}},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

func usedMemory(t *testing.T, s *Snapshot, nodeName string) int64 {
	t.Helper()
	n, ok := s.Node(nodeName)
	if !ok {
		t.Fatalf("node %s is not in the snapshot", nodeName)
	}
	var used int64
	for _, d := range n.Devices {
		used += d.Used.MemoryMiB
	}
	return used
}

// TestCacheFollowsEvents drives the cache through a sequence of events and
// checks the published state after each.
func TestCacheFollowsEvents(t *testing.T) {
	c := New(annotations.DefaultKeys())
	n1, n2 := node(t, "n1", gpu("g1", "A100")), node(t, "n2", gpu("g2", "H100"))

	// A pod whose node arrives later is counted once the node is there.
	p := pod(t, "p", "n1", "n1", "g1", 300)
	c.UpsertPod(p)
	if c.Snapshot().Len() != 0 {
		t.Fatalf("a node seen only through a pod must not be published")
	}
	c.UpsertNode(n1)
	c.UpsertNode(n2)
	if got := usedMemory(t, c.Snapshot(), "n1"); got != 300 {
		t.Fatalf("n1 used = %d, want 300", got)
	}

	// The same snapshot is handed out until something changes.
	s1 := c.Snapshot()
	if s2 := c.Snapshot(); s1 != s2 {
		t.Errorf("snapshot rebuilt without a change")
	}
	// A status-only node update does not change the GPU state.
	n1b := n1.DeepCopy()
	n1b.Status.Phase = corev1.NodeRunning
	c.UpsertNode(n1b)
	if c.Snapshot() != s1 {
		t.Errorf("a status-only node update rebuilt the snapshot")
	}

	// Reassignment to another node moves the usage.
	moved := pod(t, "p", "", "n2", "g2", 500)
	c.UpsertPod(moved)
	s := c.Snapshot()
	if usedMemory(t, s, "n1") != 0 || usedMemory(t, s, "n2") != 500 {
		t.Fatalf("after the move: n1 %d, n2 %d; want 0 and 500", usedMemory(t, s, "n1"), usedMemory(t, s, "n2"))
	}

	// A terminal pod uses nothing; deleting it (even by tombstone) is harmless.
	done := moved.DeepCopy()
	done.Status.Phase = corev1.PodSucceeded
	c.UpsertPod(done)
	if got := usedMemory(t, c.Snapshot(), "n2"); got != 0 {
		t.Fatalf("terminal pod still counted: %d", got)
	}
	c.handlePod(toolscache.DeletedFinalStateUnknown{Key: "ns/p", Obj: done}, true)

	// A bad inventory counts as no GPUs and is summarised.
	bad := n2.DeepCopy()
	bad.Annotations[annotations.DefaultKeys().Inventory] = "{"
	c.UpsertNode(bad)
	s = c.Snapshot()
	if n, _ := s.Node("n2"); n.InventoryErr == nil || len(n.Devices) != 0 {
		t.Fatalf("bad inventory: %+v", n)
	}
	if s.Summary().NodesWithBadInventory != 1 {
		t.Errorf("NodesWithBadInventory = %d, want 1", s.Summary().NodesWithBadInventory)
	}

	// A pod with an undecodable assignment is counted as bad on its node.
	broken := pod(t, "broken", "n1", "n1", "g1", 1)
	broken.Annotations[annotations.DefaultKeys().Assignment] = "not json"
	c.UpsertPod(broken)
	if got := c.Snapshot().Summary().PodsWithBadAssignment; got != 1 {
		t.Errorf("PodsWithBadAssignment = %d, want 1", got)
	}
	c.DeletePod(broken)

	// Deleting a node removes it.
	c.handleNode(toolscache.DeletedFinalStateUnknown{Key: "n1", Obj: n1b}, true)
	if _, ok := c.Snapshot().Node("n1"); ok {
		t.Errorf("deleted node still published")
	}
	// Objects of the wrong type are ignored, not a panic.
	c.handleNode("not a node", false)
	c.handlePod(42, false)
}

func TestSummary(t *testing.T) {
	full := vgpu.DeviceState{GPU: gpu("a", "A100"), Used: vgpu.Usage{Slots: 4, MemoryMiB: 100}}
	half := vgpu.DeviceState{GPU: gpu("b", "A100"), Used: vgpu.Usage{Slots: 1, MemoryMiB: 500, Cores: 30}}
	sick := vgpu.DeviceState{GPU: gpu("c", "H100")}
	sick.Healthy = false
	s := NewSnapshot([]*NodeGPUs{{Name: "n", Devices: []vgpu.DeviceState{full, half, sick}, BadPods: 2}}, metav1.Now().Time).Summary()
	want := Summary{Nodes: 1, PodsWithBadAssignment: 2, FreeSlots: 3, FreeMemoryMiB: 900 + 500, FreeCores: 100 + 70,
		LargestPlaceableMiB: map[string]int64{"A100": 500}}
	if s.Nodes != want.Nodes || s.PodsWithBadAssignment != want.PodsWithBadAssignment || s.FreeSlots != want.FreeSlots ||
		s.FreeMemoryMiB != want.FreeMemoryMiB || s.FreeCores != want.FreeCores || len(s.LargestPlaceableMiB) != 1 ||
		s.LargestPlaceableMiB["A100"] != 500 {
		t.Errorf("Summary = %+v, want %+v", s, want)
	}
}
