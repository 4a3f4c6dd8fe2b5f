package fleet

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

const gib = 1024

func gpuNode(name string, gpus ...vgpu.GPU) *corev1.Node {
	return testcluster.Node(testcluster.NodeSpec{Name: name, MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110, GPUs: gpus})
}

func share(g vgpu.GPU, memMiB int64, cores int) testcluster.Share {
	return testcluster.Share{GPU: g, MemoryMiB: memMiB, Cores: cores}
}

// waitingPod is an unbound pod asking for vGPUs, with the scheduler's
// reason on its PodScheduled condition.
func waitingPod(name string, vgpus, memMiB int64, reason string) *corev1.Pod {
	pod := testcluster.Pod(name, "", 100, 1<<30)
	names := config.Default().Resources
	rl := corev1.ResourceList{
		corev1.ResourceName(names.VGPU):   *resource.NewQuantity(vgpus, resource.DecimalSI),
		corev1.ResourceName(names.Memory): *resource.NewQuantity(memMiB, resource.DecimalSI),
	}
	pod.Spec.Containers[0].Resources.Limits = rl
	pod.Status.Phase = corev1.PodPending
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: reason}}
	return pod
}

func TestBuildMember(t *testing.T) {
	a0, a1 := testcluster.GPU("a", 0), testcluster.GPU("a", 1)
	b0 := testcluster.GPU("b", 0)
	sick := testcluster.GPU("c", 0)
	sick.Healthy = false
	badAssignment := testcluster.Pod("bad", "a", 100, 1<<30)
	badAssignment.Annotations[annotations.DefaultKeys().Assignment] = `{"version":"v9"}`
	badNode := gpuNode("broken")
	badNode.Annotations[annotations.DefaultKeys().Inventory] = "not json"

	tests := []struct {
		name  string
		nodes []*corev1.Node
		pods  []*corev1.Pod
		check func(t *testing.T, c Cluster)
	}{{
		name:  "fragmented: much memory free, no GPU with 40 GiB",
		nodes: []*corev1.Node{gpuNode("a", a0, a1)},
		pods: []*corev1.Pod{
			testcluster.GPUPod("p0", "a", 100, 1<<30, share(a0, 48*gib, 0)),
			testcluster.GPUPod("p1", "a", 100, 1<<30, share(a1, 40*gib, 30)),
			testcluster.GPUPod("p2", "a", 100, 1<<30, share(a1, 8*gib, 0)),
		},
		check: func(t *testing.T, c Cluster) {
			m := onlyModel(t, c)
			want := ModelSummary{
				Cluster: "m", Model: testcluster.Model, Nodes: 1, GPUs: 2, HealthyGPUs: 2,
				Slots: Capacity{Free: 17, Total: 20}, MemoryMiB: Capacity{Free: 64 * gib, Total: 160 * gib},
				Cores: Capacity{Free: 170, Total: 200}, LargestFreeMiB: 32 * gib,
			}
			if m != want {
				t.Errorf("summary:\n got %+v\nwant %+v", m, want)
			}
			g := c.Nodes[0].GPUs[1]
			if names := holderPods(g); !slices.Equal(names, []string{"p1", "p2"}) {
				t.Errorf("GPU 1 holders %v, want p1 then p2 (largest first)", names)
			}
			if g.Used != (Usage{Slots: 2, MemoryMiB: 48 * gib, Cores: 30}) || g.Free != (Usage{Slots: 8, MemoryMiB: 32 * gib, Cores: 70}) {
				t.Errorf("GPU 1 used %+v free %+v", g.Used, g.Free)
			}
			if len(c.Pods) != 3 || c.Pods[1].Containers[0].GPUs[0] != a1.UUID || c.Pods[1].Containers[0].Cores != 30 {
				t.Errorf("pods %+v", c.Pods)
			}
		},
	}, {
		name:  "an unhealthy GPU counts in totals, never as free",
		nodes: []*corev1.Node{gpuNode("c", sick), gpuNode("b", b0)},
		check: func(t *testing.T, c Cluster) {
			m := onlyModel(t, c)
			if m.GPUs != 2 || m.HealthyGPUs != 1 || m.MemoryMiB != (Capacity{Free: 80 * gib, Total: 160 * gib}) || m.Slots.Free != 10 {
				t.Errorf("summary %+v", m)
			}
			if c.Nodes[0].Name != "b" || c.Nodes[1].GPUs[0].Healthy {
				t.Errorf("nodes not sorted or health lost: %+v", c.Nodes)
			}
		},
	}, {
		name:  "a waiting pod is counted with the scheduler's reason",
		nodes: []*corev1.Node{gpuNode("b", b0)},
		pods:  []*corev1.Pod{waitingPod("w", 1, 90*gib, "0/1 nodes are available: 1 Insufficient GPU memory.")},
		check: func(t *testing.T, c Cluster) {
			if c.WaitingPods != 1 || len(c.Pods) != 1 {
				t.Fatalf("waiting %d, pods %+v", c.WaitingPods, c.Pods)
			}
			p := c.Pods[0]
			if !p.Waiting || !strings.Contains(p.Reason, "Insufficient") || p.Containers[0].MemoryMiB != 90*gib || p.Containers[0].VGPUs != 1 {
				t.Errorf("pod %+v", p)
			}
		},
	}, {
		name:  "bad inventory and bad assignment are problems, not counted",
		nodes: []*corev1.Node{badNode, gpuNode("a", a0)},
		pods:  []*corev1.Pod{badAssignment, testcluster.Pod("plain", "a", 100, 1<<30)},
		check: func(t *testing.T, c Cluster) {
			if len(c.Problems) != 2 || !strings.Contains(strings.Join(c.Problems, "\n"), "broken") || !strings.Contains(strings.Join(c.Problems, "\n"), "default/bad") {
				t.Errorf("problems %q", c.Problems)
			}
			if c.Nodes[1].Name != "broken" || c.Nodes[1].InventoryError == "" || len(c.Nodes[1].GPUs) != 0 {
				t.Errorf("broken node %+v", c.Nodes[1])
			}
			if m := onlyModel(t, c); m.MemoryMiB.Free != 80*gib {
				t.Errorf("the bad assignment was counted: %+v", m)
			}
			if len(c.Pods) != 0 {
				t.Errorf("pods without vGPU requests are listed: %+v", c.Pods)
			}
		},
	}, {
		name: "observed use from the node agent's report; a bad report is a problem",
		nodes: []*corev1.Node{withUsage(gpuNode("a", a0), `{"version":"v1","observedAt":"2026-12-07T20:00:00Z","containers":[{"namespace":"default","pod":"p0","container":"main","memoryUsedMiB":30000}]}`),
			withUsage(gpuNode("b", b0), `{"version":"v9"}`)},
		pods: []*corev1.Pod{
			testcluster.GPUPod("p0", "a", 100, 1<<30, share(a0, 48*gib, 0)),
			testcluster.GPUPod("p1", "b", 100, 1<<30, share(b0, 8*gib, 0)),
		},
		check: func(t *testing.T, c Cluster) {
			if u := c.Pods[0].Containers[0].UsedMemoryMiB; u == nil || *u != 30000 {
				t.Errorf("p0 observed use %v, want 30000 MiB", u)
			}
			if u := c.Pods[1].Containers[0].UsedMemoryMiB; u != nil {
				t.Errorf("p1 has observed use %d from a bad report", *u)
			}
			if len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "node b: annotation tessera.io/gpu-usage") {
				t.Errorf("problems %q", c.Problems)
			}
		},
	}, {
		name:  "a member without Tessera",
		nodes: []*corev1.Node{gpuNode("plain")},
		check: func(t *testing.T, c Cluster) {
			if c.Tessera || len(c.Models) != 0 || len(c.Nodes) != 1 {
				t.Errorf("cluster %+v", c)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := buildMember("m", memberObjects{nodes: tc.nodes, pods: tc.pods}, config.Default())
			tc.check(t, m.view)
		})
	}
}

func withUsage(n *corev1.Node, raw string) *corev1.Node {
	n.Annotations[annotations.DefaultKeys().Usage] = raw
	return n
}

func onlyModel(t *testing.T, c Cluster) ModelSummary {
	t.Helper()
	if len(c.Models) != 1 {
		t.Fatalf("models %+v, want one", c.Models)
	}
	return c.Models[0]
}

func holderPods(g GPU) []string {
	var out []string
	for _, h := range g.Holders {
		out = append(out, h.Pod)
	}
	return out
}
