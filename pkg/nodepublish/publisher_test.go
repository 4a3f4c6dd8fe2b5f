package nodepublish

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestComputeDesired(t *testing.T) {
	gpus := testGPUs()
	sick := testGPUs()
	sick[0].Healthy = false
	tests := []struct {
		name          string
		gpus          []vgpu.GPU
		memory, cores int64
		healthy       int
	}{
		{name: "all healthy", gpus: gpus, memory: 81920, cores: 200, healthy: 2},
		{name: "unhealthy GPU offers nothing", gpus: sick, memory: 40960, cores: 100, healthy: 1},
		{name: "no GPUs", gpus: nil, memory: 0, cores: 0, healthy: 0},
		{
			name:   "scaled memory and partial cores are summed as given",
			gpus:   []vgpu.GPU{{UUID: "GPU-x", MemoryMiB: 61440, Cores: 50, Healthy: true}, {UUID: "GPU-y", Index: 1, MemoryMiB: 1, Cores: 100, Healthy: true}},
			memory: 61441, cores: 150, healthy: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := computeDesired(tt.gpus)
			if err != nil {
				t.Fatal(err)
			}
			if d.memory.Value() != tt.memory || d.cores.Value() != tt.cores || d.healthy != tt.healthy || d.gpus != len(tt.gpus) {
				t.Errorf("got memory %s cores %s healthy %d of %d; want %d, %d, %d of %d",
					d.memory.String(), d.cores.String(), d.healthy, d.gpus, tt.memory, tt.cores, tt.healthy, len(tt.gpus))
			}
			inv, err := annotations.DecodeInventory(d.inventory)
			if err != nil {
				t.Fatalf("the published annotation does not decode: %v", err)
			}
			if len(inv.GPUs) != len(tt.gpus) {
				t.Errorf("inventory has %d GPUs, want %d", len(inv.GPUs), len(tt.gpus))
			}
			for i := 1; i < len(inv.GPUs); i++ {
				if inv.GPUs[i-1].Index > inv.GPUs[i].Index {
					t.Errorf("inventory is not in index order: %+v", inv.GPUs)
				}
			}
		})
	}
	// The encoding must not depend on the tracker's order, or the node
	// would be rewritten whenever the order changes.
	a, _ := computeDesired(gpus)
	b, _ := computeDesired([]vgpu.GPU{gpus[1], gpus[0]})
	if a.inventory != b.inventory {
		t.Errorf("order changes the annotation:\n%s\n%s", a.inventory, b.inventory)
	}
}

func TestNewRejectsIncompleteOptions(t *testing.T) {
	good := Options{NodeName: "n", Keys: annotations.DefaultKeys(), Resources: config.Default().Resources}
	tests := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{name: "no node name", mutate: func(o *Options) { o.NodeName = "" }, want: "no node name"},
		{name: "no inventory key", mutate: func(o *Options) { o.Keys.Inventory = "" }, want: "no inventory annotation key"},
		{name: "no cores resource", mutate: func(o *Options) { o.Resources.Cores = "" }, want: "no memory or cores"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.mutate(&o)
			_, err := New(o, newFakeDevices(nil), fake.NewClientset(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	if _, err := New(good, newFakeDevices(nil), fake.NewClientset(), nil); err != nil {
		t.Fatalf("New with good options: %v", err)
	}
}

func TestPublisher(t *testing.T) {
	res := config.Default().Resources
	memName, coresName := corev1.ResourceName(res.Memory), corev1.ResourceName(res.Cores)
	invKey := annotations.DefaultKeys().Inventory

	tests := []struct {
		name  string
		node  *corev1.Node
		setup func(*fake.Clientset)
		// then runs after the first publish has been seen.
		then func(t *testing.T, h *harness)
	}{
		{
			name: "first publish sets annotation, capacity and allocatable",
			node: emptyNode(),
			then: func(t *testing.T, h *harness) {
				h.waitForEvent("Normal", ReasonPublished, "2 GPUs (2 healthy)", "tessera.io/vgpu-memory=81920", "tessera.io/vgpu-cores=200")
				if got := h.patchCount(); got != 2 {
					t.Errorf("first publish made %d patches, want 2 (annotation, status)", got)
				}
			},
		},
		{
			name: "unchanged GPUs and unrelated node updates cause no rewrite",
			node: emptyNode(),
			then: func(t *testing.T, h *harness) {
				for range 5 {
					h.devices.set(nil)
				}
				n := h.node().DeepCopy()
				n.Labels = map[string]string{"unrelated": "change"}
				if _, err := h.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				// A real change afterwards is the barrier: once it is on
				// the node, every earlier notification has been handled.
				gpus := testGPUs()
				gpus[0].Healthy = false
				h.devices.set(gpus)
				h.waitFor("the health change", published(gpus, 40960, 100))
				if got := h.patchCount(); got != 4 {
					t.Errorf("made %d patches, want 4 (2 first publish + 2 health change, none for no-op notifications)", got)
				}
			},
		},
		{
			name: "health change drops the GPU from the sums and marks it unhealthy",
			node: emptyNode(),
			then: func(t *testing.T, h *harness) {
				gpus := testGPUs()
				gpus[1].Healthy = false // GPU-aaaa, index 0
				h.devices.set(gpus)
				h.waitFor("GPU-aaaa unhealthy", published(gpus, 40960, 100))
				inv, _ := annotations.DecodeInventory(h.node().Annotations[invKey])
				if inv.GPUs[0].UUID != "GPU-aaaa" || inv.GPUs[0].Healthy {
					t.Errorf("annotation does not show GPU-aaaa unhealthy: %+v", inv.GPUs)
				}
			},
		},
		{
			name: "resources removed by a kubelet status update are restored",
			node: emptyNode(),
			then: func(t *testing.T, h *harness) {
				n := h.node().DeepCopy()
				delete(n.Status.Capacity, memName)
				delete(n.Status.Allocatable, coresName)
				if _, err := h.client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				h.waitFor("restored resources", published(testGPUs(), 81920, 200))
				h.waitForEvent("Normal", ReasonRestored, "2 GPUs (2 healthy)")
			},
		},
		{
			name: "changed resource values are put back",
			node: emptyNode(),
			then: func(t *testing.T, h *harness) {
				n := h.node().DeepCopy()
				n.Status.Allocatable[memName] = resource.MustParse("1")
				if _, err := h.client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				h.waitFor("restored allocatable memory", published(testGPUs(), 81920, 200))
			},
		},
		{
			name: "removed annotation is restored",
			node: emptyNode(),
			then: func(t *testing.T, h *harness) {
				n := h.node().DeepCopy()
				delete(n.Annotations, invKey)
				if _, err := h.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				h.waitFor("restored annotation", published(testGPUs(), 81920, 200))
			},
		},
		{
			name:  "failed status patch is retried",
			node:  emptyNode(),
			setup: failPatches("status", 2),
			then: func(t *testing.T, h *harness) {
				h.waitForEvent("Warning", ReasonPublishFailed, "publish resources for node "+testNode+": patch status", "injected API failure")
			},
		},
		{
			name: "missing node is a clear error, retried until the node appears",
			node: nil,
			then: nil, // handled below: the first publish needs the node created.
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startHarness(t, tt.node, testGPUs(), tt.setup)
			if tt.node == nil {
				h.waitForEvent("Warning", ReasonPublishFailed, "publish inventory for node "+testNode+": get node", "not found")
				if h.publisher.Published() {
					t.Error("Published() is true although the node does not exist")
				}
				if _, err := h.client.CoreV1().Nodes().Create(context.Background(), emptyNode(), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			h.waitFor("first publish", published(testGPUs(), 81920, 200))
			h.poll("Published() to be true", h.publisher.Published)
			h.waitWatching()
			if tt.then != nil {
				tt.then(t, h)
			}
		})
	}
}

func (h *harness) waitForEvent(subs ...string) {
	h.t.Helper()
	h.poll("event "+strings.Join(subs, " "), func() bool {
		_, ok := h.events.find(subs...)
		return ok
	})
}

// BenchmarkNodeEventCheck measures what every Node update event costs the
// publisher's handler (kubelet heartbeats included): deriving the desired
// state of an 8-GPU node and comparing it with the Node.
func BenchmarkNodeEventCheck(b *testing.B) {
	var gpus []vgpu.GPU
	for i := range 8 {
		gpus = append(gpus, vgpu.GPU{UUID: "GPU-" + strings.Repeat(string(rune('a'+i)), 8), Index: i, Model: "NVIDIA A100-SXM4-80GB",
			MemoryMiB: 81920, Slots: 10, Cores: 100, Healthy: true})
	}
	res := config.Default().Resources
	n := names{inventoryKey: annotations.DefaultKeys().Inventory, memory: corev1.ResourceName(res.Memory), cores: corev1.ResourceName(res.Cores)}
	d, err := computeDesired(gpus)
	if err != nil {
		b.Fatal(err)
	}
	node := emptyNode()
	node.Annotations = map[string]string{n.inventoryKey: d.inventory}
	node.Status.Capacity = corev1.ResourceList{n.memory: d.memory, n.cores: d.cores}
	node.Status.Allocatable = node.Status.Capacity.DeepCopy()
	b.ReportAllocs()
	for b.Loop() {
		d, err := computeDesired(gpus)
		if err != nil || !n.current(node, d) {
			b.Fatal("node should be current")
		}
	}
}
