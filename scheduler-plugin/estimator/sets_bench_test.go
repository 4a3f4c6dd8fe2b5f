package estimator

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	"github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework/parallelize"

	"github.com/tessera-gpu/tessera/pkg/config"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// BenchmarkComponentSets answers MaxAvailableComponentSets on 5,000 nodes
// of 8 GPUs, about half of their memory used by 8 random GPU pods per node,
// beside MaxAvailableReplicas for the sets' workers alone on the same
// snapshot and plugin: computed from the nodes (a plugin WithoutMemo) and,
// as the server answers a shape it answered at the same state, memoised.
func BenchmarkComponentSets(b *testing.B) {
	nodes, pods := tc.Fragmented(1, 5000, 8, 8, nil)
	memoised, snapshot := setup(b, cluster{nodes: nodes, pods: pods})
	memoised.parallelizer = parallelize.NewParallelizer(0)
	computed, err := New(config.Default(), memoised.gpus, 0, WithoutMemo())
	if err != nil {
		b.Fatal(err)
	}
	worker40 := quantities(resVGPU, "1", resMemory, "40960", "cpu", "4", "memory", "8Gi")
	worker2x40 := quantities(resVGPU, "2", resMemory, "81920", "cpu", "4", "memory", "8Gi")
	sets := []struct {
		name       string
		workers    corev1.ResourceList
		components []*pb.Component
	}{
		{"launcher+8x1x40GiB", worker40, []*pb.Component{
			comp("launcher", 1, quantities("cpu", "1", "memory", "2Gi")), comp("worker", 8, worker40),
		}},
		{"head1x16GiB+4x2x40GiB", worker2x40, []*pb.Component{
			comp("head", 1, quantities(resVGPU, "1", resMemory, "16384", "cpu", "2", "memory", "4Gi")), comp("worker", 4, worker2x40),
		}},
	}
	ctx := context.Background()
	for _, s := range sets {
		for _, p := range []struct {
			suffix string
			plugin *Plugin
		}{{"", computed}, {"_memoised", memoised}} {
			b.Run(s.name+"/sets"+p.suffix, func(b *testing.B) {
				var n int32
				for b.Loop() {
					var ret *framework.Result
					n, ret = p.plugin.EstimateComponents(ctx, framework.ComponentEstimationContext{Snapshot: snapshot, Components: s.components})
					if !ret.IsSuccess() {
						b.Fatal(ret.Reasons())
					}
				}
				b.ReportMetric(float64(n), "sets")
			})
			b.Run(s.name+"/workers_alone"+p.suffix, func(b *testing.B) {
				runEstimate(b, p.plugin, framework.ReplicaEstimationContext{Snapshot: snapshot, ReplicaRequirements: replicaRequirements(s.workers, nil)}, nil)
			})
		}
	}
}
