package estimator

import (
	"context"
	"math"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

const (
	resVGPU   = "tessera.io/vgpu"
	resMemory = "tessera.io/vgpu-memory"
	resCores  = "tessera.io/vgpu-cores"
)

// cluster is a member cluster for a table case.
type cluster struct {
	nodes []*corev1.Node
	pods  []*corev1.Pod
}

// gpuNode is a node of n default GPUs with 64 CPUs, 512 GiB and 110 pods.
func gpuNode(name string, n int, labels map[string]string, taints ...corev1.Taint) *corev1.Node {
	spec := tc.NodeSpec{Name: name, Labels: labels, Taints: taints, MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110}
	for i := range n {
		spec.GPUs = append(spec.GPUs, tc.GPU(name, i))
	}
	return tc.Node(spec)
}

// usedPod takes memMiB (and cores) on each listed GPU index of node.
func usedPod(name, node string, memMiB int64, cores int, gpuIndices ...int) *corev1.Pod {
	var shares []tc.Share
	for _, i := range gpuIndices {
		shares = append(shares, tc.Share{GPU: tc.GPU(node, i), MemoryMiB: memMiB, Cores: cores})
	}
	return tc.GPUPod(name, node, 100, 1<<30, shares...)
}

func quantities(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func replicaRequirements(rl corev1.ResourceList, claim *pb.NodeClaim) *pb.ReplicaRequirements {
	return (&pb.ReplicaRequirements{NodeClaim: claim}).MustSetResourceRequest(rl)
}

// setup builds both snapshots the plugin reads from the same objects.
func setup(t testing.TB, c cluster) (*Plugin, *schedcache.Snapshot) {
	t.Helper()
	cache := gpucache.New(annotations.DefaultKeys())
	for _, n := range c.nodes {
		cache.UpsertNode(n)
	}
	for _, p := range c.pods {
		cache.UpsertPod(p)
	}
	p, err := New(config.Default(), cache, 2)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var bound []*corev1.Pod
	for _, p := range c.pods {
		if p.Spec.NodeName != "" { // Karmada's scheduler cache holds bound pods only
			bound = append(bound, p)
		}
	}
	return p, schedcache.NewSnapshot(bound, c.nodes)
}

func TestEstimate(t *testing.T) {
	gpu1mem40G := quantities(resVGPU, "1", resMemory, "40960", "cpu", "1")
	tainted := corev1.Taint{Key: "gpu", Value: "reserved", Effect: corev1.TaintEffectNoSchedule}
	tests := []struct {
		name     string
		cluster  cluster
		rr       *pb.ReplicaRequirements
		want     int32
		wantCode framework.Code
		wantErr  string
	}{
		{
			name:     "a request without Tessera resources is left to the stock plugins",
			cluster:  cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			rr:       replicaRequirements(quantities("cpu", "1"), nil),
			want:     math.MaxInt32,
			wantCode: framework.Noopperation,
		},
		{
			name:    "memory shares per GPU on an empty node",
			cluster: cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			rr:      replicaRequirements(gpu1mem40G, nil),
			want:    4, // 2 per GPU
		},
		{
			name: "fragmented memory fits nowhere although the node total would",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 2, nil)},
				pods:  []*corev1.Pod{usedPod("a", "n1", 50000, 0, 0), usedPod("b", "n1", 50000, 0, 1)},
			},
			rr:   replicaRequirements(quantities(resVGPU, "1", resMemory, "32768"), nil),
			want: 0, // 31920 MiB free on each GPU, 63840 on the node
		},
		{
			name: "per-node minimum, not the minimum of cluster sums",
			cluster: cluster{nodes: []*corev1.Node{
				tc.Node(tc.NodeSpec{Name: "cpu-poor", MilliCPU: 2000, MemoryBytes: 64 << 30, Pods: 110,
					GPUs: []vgpu.GPU{tc.GPU("cpu-poor", 0), tc.GPU("cpu-poor", 1)}}),
				tc.Node(tc.NodeSpec{Name: "gpu-poor", MilliCPU: 64000, MemoryBytes: 64 << 30, Pods: 110,
					GPUs: []vgpu.GPU{tc.GPU("gpu-poor", 0)}}),
			}, pods: []*corev1.Pod{usedPod("x", "gpu-poor", 40960, 0, 0)}},
			rr:   replicaRequirements(gpu1mem40G, nil),
			want: 3, // cpu-poor: min(4 by GPU, 2 by CPU); gpu-poor: min(1 by GPU, 63 by CPU)
		},
		{
			name: "node selector and affinity pick the nodes",
			cluster: cluster{nodes: []*corev1.Node{
				gpuNode("a1", 1, map[string]string{"zone": "a"}), gpuNode("b1", 1, map[string]string{"zone": "b"}),
			}},
			rr:   replicaRequirements(gpu1mem40G, &pb.NodeClaim{NodeSelector: map[string]string{"zone": "b"}}),
			want: 2,
		},
		{
			name: "required node affinity through Karmada's pb helpers",
			cluster: cluster{nodes: []*corev1.Node{
				gpuNode("a1", 1, map[string]string{"zone": "a"}), gpuNode("b1", 2, map[string]string{"zone": "b"}),
			}},
			rr: replicaRequirements(gpu1mem40G, (&pb.NodeClaim{}).MustSetNodeAffinity(&corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}},
			}}})),
			want: 2,
		},
		{
			name:    "tainted nodes count only when tolerated",
			cluster: cluster{nodes: []*corev1.Node{gpuNode("t1", 1, nil, tainted), gpuNode("n1", 1, nil)}},
			rr:      replicaRequirements(gpu1mem40G, nil),
			want:    2,
		},
		{
			name:    "tolerated taint",
			cluster: cluster{nodes: []*corev1.Node{gpuNode("t1", 1, nil, tainted), gpuNode("n1", 1, nil)}},
			rr: replicaRequirements(gpu1mem40G, (&pb.NodeClaim{}).MustSetTolerations([]corev1.Toleration{
				{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "reserved", Effect: corev1.TaintEffectNoSchedule},
			})),
			want: 4,
		},
		{
			name: "two GPUs per replica need two distinct GPUs with room",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 4, nil)},
				pods:  []*corev1.Pod{usedPod("a", "n1", 81920, 0, 0, 1, 2)}, // three GPUs full
			},
			rr:   replicaRequirements(quantities(resVGPU, "2", resMemory, "2048"), nil),
			want: 0,
		},
		{
			name: "vGPU without memory takes only untouched GPUs",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 4, nil)},
				pods:  []*corev1.Pod{usedPod("a", "n1", 1024, 0, 0)},
			},
			rr:   replicaRequirements(quantities(resVGPU, "1"), nil),
			want: 3,
		},
		{
			name: "cores bound the copies per GPU",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 1, nil)},
				pods:  []*corev1.Pod{usedPod("a", "n1", 1024, 40, 0)},
			},
			rr:   replicaRequirements(quantities(resVGPU, "1", resMemory, "1024", resCores, "30"), nil),
			want: 2, // 60% left
		},
		{
			name: "the pod count bounds the node",
			cluster: cluster{
				nodes: []*corev1.Node{tc.Node(tc.NodeSpec{Name: "n1", MilliCPU: 64000, MemoryBytes: 64 << 30, Pods: 3,
					GPUs: []vgpu.GPU{tc.GPU("n1", 0)}})},
				pods: []*corev1.Pod{tc.Pod("p1", "n1", 100, 1<<20), tc.Pod("p2", "n1", 100, 1<<20)},
			},
			rr:   replicaRequirements(quantities(resVGPU, "1", resMemory, "1024"), nil),
			want: 1,
		},
		{
			name: "a node with an undecodable inventory counts as zero; the others still count",
			cluster: cluster{nodes: []*corev1.Node{
				tc.Node(tc.NodeSpec{Name: "bad", MilliCPU: 64000, MemoryBytes: 64 << 30, Pods: 110,
					GPUs: []vgpu.GPU{tc.GPU("bad", 0)}, RawInventory: `{"version":"v1","gpus":[{"uuid":"x"},{"uuid":"x"}]}`}),
				gpuNode("good", 1, nil),
			}},
			rr:   replicaRequirements(gpu1mem40G, nil),
			want: 2,
		},
		{
			name:    "a node whose allocatable lacks Tessera resources (device plugin not up) counts as zero",
			cluster: cluster{nodes: []*corev1.Node{withoutTesseraAllocatable(gpuNode("n1", 2, nil))}},
			rr:      replicaRequirements(gpu1mem40G, nil),
			want:    0,
		},
		{
			name: "an in-flight assignment (annotated, not yet bound) counts as used",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 1, nil)},
				pods:  []*corev1.Pod{unbound(usedPod("inflight", "n1", 40960, 0, 0))},
			},
			rr:   replicaRequirements(gpu1mem40G, nil),
			want: 1,
		},
		{
			name:    "memory without vGPU is an error",
			cluster: cluster{nodes: []*corev1.Node{gpuNode("n1", 1, nil)}},
			rr:      replicaRequirements(quantities(resMemory, "1024"), nil),
			wantErr: "without any vGPU",
		},
		{
			name:    "a negative quantity is an error",
			cluster: cluster{nodes: []*corev1.Node{gpuNode("n1", 1, nil)}},
			rr:      replicaRequirements(quantities(resVGPU, "1", "cpu", "-1"), nil),
			wantErr: "negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, snapshot := setup(t, tt.cluster)
			got, ret := p.Estimate(context.Background(), framework.ReplicaEstimationContext{Snapshot: snapshot, ReplicaRequirements: tt.rr})
			if tt.wantErr != "" {
				if !ret.IsFailed() || !strings.Contains(ret.AsError().Error(), tt.wantErr) {
					t.Fatalf("result = %v %v, want an error containing %q", ret.Code(), ret.Reasons(), tt.wantErr)
				}
				return
			}
			if ret.Code() != tt.wantCode || got != tt.want {
				t.Errorf("Estimate = %d (%v %v), want %d (%v)", got, ret.Code(), ret.Reasons(), tt.want, tt.wantCode)
			}
		})
	}
}

func TestEstimateDeductsAssumedWorkloads(t *testing.T) {
	p, snapshot := setup(t, cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}})
	inflight := &pb.AssumedWorkload{Namespace: "ns", Components: []*pb.Component{{
		Name: "w", Replicas: 3,
		ReplicaRequirements: (&pb.ComponentReplicaRequirements{}).MustSetResourceRequest(quantities(resVGPU, "1", resMemory, "40960")),
	}}}
	got, ret := p.Estimate(context.Background(), framework.ReplicaEstimationContext{
		Snapshot:            snapshot,
		ReplicaRequirements: replicaRequirements(quantities(resVGPU, "1", resMemory, "40960"), nil),
		AssumedWorkloads:    []*pb.AssumedWorkload{inflight},
	})
	if !ret.IsSuccess() || got != 1 {
		t.Errorf("Estimate with 3 of 4 shares in flight = %d (%v), want 1", got, ret.Reasons())
	}
}

func withoutTesseraAllocatable(n *corev1.Node) *corev1.Node {
	for _, name := range []string{resVGPU, resMemory, resCores} {
		delete(n.Status.Allocatable, corev1.ResourceName(name))
	}
	return n
}

func unbound(p *corev1.Pod) *corev1.Pod {
	p.Spec.NodeName = ""
	p.Status.Phase = corev1.PodPending
	return p
}
