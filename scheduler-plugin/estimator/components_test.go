package estimator

import (
	"context"
	"math"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

func comp(name string, replicas int32, rl corev1.ResourceList) *pb.Component {
	return &pb.Component{Name: name, Replicas: replicas, ReplicaRequirements: (&pb.ComponentReplicaRequirements{}).MustSetResourceRequest(rl)}
}

func TestEstimateComponents(t *testing.T) {
	worker := quantities(resVGPU, "1", "cpu", "4")         // a whole GPU each
	shard := quantities(resVGPU, "1", resMemory, "40960")  // half a GPU
	launcher := quantities("cpu", "2", "memory", "4Gi")    // no GPU
	twoGPU := quantities(resVGPU, "2", resMemory, "20480") // 10 GiB on each of two GPUs
	tests := []struct {
		name       string
		cluster    cluster
		components []*pb.Component
		want       int32
		wantCode   framework.Code
		wantErr    string
	}{
		{
			name:       "sets without Tessera resources are left to the stock plugins",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			components: []*pb.Component{comp("web", 2, launcher)},
			want:       math.MaxInt32,
			wantCode:   framework.Noopperation,
		},
		{
			name:       "one component is exact: capacity over all nodes divided by replicas",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil), gpuNode("n2", 2, nil)}},
			components: []*pb.Component{comp("shard", 3, shard)},
			want:       2, // 8 shares / 3
		},
		{
			name:       "launcher plus workers",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 4, nil), gpuNode("n2", 4, nil)}},
			components: []*pb.Component{comp("launcher", 1, launcher), comp("worker", 4, worker)},
			want:       2,
		},
		{
			name:       "a set larger than any node spans nodes",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 4, nil), gpuNode("n2", 4, nil)}},
			components: []*pb.Component{comp("launcher", 1, launcher), comp("worker", 6, worker)},
			want:       1,
		},
		{
			name: "fragmentation is seen per GPU",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 2, nil)},
				pods:  []*corev1.Pod{usedPod("a", "n1", 1024, 0, 0)},
			},
			components: []*pb.Component{comp("launcher", 1, launcher), comp("worker", 2, worker)},
			want:       0, // one GPU is touched, so only one whole GPU is left
			wantCode:   framework.Unschedulable,
		},
		{
			name:       "mixed GPU shapes share the GPUs",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			components: []*pb.Component{comp("pair", 1, twoGPU), comp("shard", 1, shard)},
			want:       2, // each set: 10+40 GiB on one GPU, 10 GiB on the other; 2 sets leave 20+60 GiB
		},
		{
			// Issue 18's example: first-fit put the small component on the
			// only GPUs the large one could use (binpack prefers the fuller
			// GPUs 0 and 1) and answered 0.
			name: "a set fits where first-fit would block the large component",
			cluster: cluster{
				nodes: []*corev1.Node{gpuNode("n1", 4, nil)},
				pods:  []*corev1.Pod{usedPod("a", "n1", 40960, 0, 0, 1), usedPod("b", "n1", 24576, 80, 2, 3)},
			},
			components: []*pb.Component{
				comp("small", 1, quantities(resVGPU, "2", resMemory, "32768")),
				comp("large", 1, quantities(resVGPU, "2", resMemory, "81920", resCores, "60")),
			},
			want: 1,
		},
		{
			name: "a launcher without GPUs competes with the workers for the node's CPUs",
			cluster: cluster{nodes: []*corev1.Node{tc.Node(tc.NodeSpec{Name: "n1", MilliCPU: 8000, MemoryBytes: 64 << 30, Pods: 110,
				GPUs: []vgpu.GPU{tc.GPU("n1", 0), tc.GPU("n1", 1), tc.GPU("n1", 2), tc.GPU("n1", 3)}})}},
			components: []*pb.Component{comp("launcher", 1, quantities("cpu", "2")), comp("worker", 2, quantities(resVGPU, "1", "cpu", "2"))},
			want:       1, // each alone allows 2 sets; together 6 CPUs per set of 8
		},
		{
			name:       "zero-replica components need nothing",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			components: []*pb.Component{comp("shard", 2, shard), comp("idle", 0, worker), nil},
			want:       2,
		},
		{
			name:       "negative replicas are an error",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			components: []*pb.Component{comp("shard", -1, shard)},
			wantErr:    "-1 replicas",
		},
		{
			name:       "an invalid GPU request is an error",
			cluster:    cluster{nodes: []*corev1.Node{gpuNode("n1", 2, nil)}},
			components: []*pb.Component{comp("bad", 1, quantities(resVGPU, "1", resMemory, "0"))},
			wantErr:    "must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, snapshot := setup(t, tt.cluster)
			got, ret := p.EstimateComponents(context.Background(), framework.ComponentEstimationContext{Snapshot: snapshot, Components: tt.components})
			if tt.wantErr != "" {
				if !ret.IsFailed() || !strings.Contains(ret.AsError().Error(), tt.wantErr) {
					t.Fatalf("result = %v %v, want an error containing %q", ret.Code(), ret.Reasons(), tt.wantErr)
				}
				return
			}
			if ret.Code() != tt.wantCode || got != tt.want {
				t.Errorf("EstimateComponents = %d (%v %v), want %d (%v)", got, ret.Code(), ret.Reasons(), tt.want, tt.wantCode)
			}
		})
	}
}

// TestAssumedComponentSetsAreDeductedWhole: an in-flight set that fits only
// when packed well is deducted whole, as the answer would place it, so the
// same cluster has no room left for a second one.
func TestAssumedComponentSetsAreDeductedWhole(t *testing.T) {
	c := cluster{
		nodes: []*corev1.Node{gpuNode("n1", 4, nil)},
		pods:  []*corev1.Pod{usedPod("a", "n1", 40960, 0, 0, 1), usedPod("b", "n1", 24576, 80, 2, 3)},
	}
	set := []*pb.Component{
		comp("small", 1, quantities(resVGPU, "2", resMemory, "32768")),
		comp("large", 1, quantities(resVGPU, "2", resMemory, "81920", resCores, "60")),
	}
	tests := []struct {
		name    string
		assumed []*pb.AssumedWorkload
		want    int32
	}{
		{name: "nothing in flight", want: 1},
		{name: "the same set in flight", assumed: []*pb.AssumedWorkload{{Namespace: "ns", Components: set}}, want: 0},
		// The extender places a lone small pod binpack, on GPUs 0 and 1,
		// and so does the simulation: then the large component has no room.
		{name: "only the small component in flight", assumed: []*pb.AssumedWorkload{{Namespace: "ns", Components: set[:1]}}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, snapshot := setup(t, c)
			got, ret := p.EstimateComponents(context.Background(), framework.ComponentEstimationContext{Snapshot: snapshot, Components: set, AssumedWorkloads: tt.assumed})
			if ret.IsFailed() || got != tt.want {
				t.Errorf("EstimateComponents = %d (%v %v), want %d", got, ret.Code(), ret.Reasons(), tt.want)
			}
		})
	}
}
