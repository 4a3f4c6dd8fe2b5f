package estimator

import (
	"context"
	"testing"

	"k8s.io/client-go/informers"
	clientset "k8s.io/client-go/kubernetes"

	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins/noderesource"
	"github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework/parallelize"

	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// stockHandle is the framework.Handle Karmada's runtime would give the
// stock plugin: no client, no informers, parallelism 0 (its default).
type stockHandle struct{}

func (stockHandle) ClientSet() clientset.Interface                         { return nil }
func (stockHandle) SharedInformerFactory() informers.SharedInformerFactory { return nil }
func (stockHandle) Parallelism() int                                       { return 0 }

// BenchmarkEstimate compares Tessera's plugin with Karmada's noderesource
// plugin answering MaxAvailableReplicas on the same snapshot: 5,000 nodes
// of 8 GPUs with 20,000 GPU pods (4 per node, fragmenting the GPUs).
func BenchmarkEstimate(b *testing.B) {
	nodes, pods := tc.Fragmented(1, 5000, 8, 4, []string{"a", "b"})
	if len(pods) != 20000 {
		b.Fatalf("generated %d pods, want 20000", len(pods))
	}
	tessera, snapshot := setup(b, cluster{nodes: nodes, pods: pods})
	tessera.parallelizer = parallelize.NewParallelizer(0) // the same default as the stock plugin
	stock, err := noderesource.New(stockHandle{})
	if err != nil {
		b.Fatal(err)
	}
	estCtx := framework.ReplicaEstimationContext{
		Snapshot:            snapshot,
		ReplicaRequirements: replicaRequirements(quantities(resVGPU, "1", resMemory, "16384", resCores, "25", "cpu", "1", "memory", "2Gi"), nil),
	}
	plugins := []struct {
		name   string
		plugin framework.EstimateReplicasPlugin
	}{
		{"tessera", tessera},
		{"noderesource", stock.(framework.EstimateReplicasPlugin)},
	}
	for _, p := range plugins {
		b.Run(p.name, func(b *testing.B) {
			runEstimate(b, p.plugin, estCtx, nil)
		})
	}
	// The first estimate after the GPU state changed also rebuilds the
	// position-to-node alignment (one map lookup per node).
	b.Run("tessera_after_change", func(b *testing.B) {
		runEstimate(b, tessera, estCtx, func() { tessera.tables.last.Store(nil) })
	})
}

func runEstimate(b *testing.B, plugin framework.EstimateReplicasPlugin, estCtx framework.ReplicaEstimationContext, before func()) {
	ctx := context.Background()
	var replicas int32
	for b.Loop() {
		if before != nil {
			before()
		}
		var ret *framework.Result
		replicas, ret = plugin.Estimate(ctx, estCtx)
		if !ret.IsSuccess() {
			b.Fatalf("%s: %v", plugin.Name(), ret.Reasons())
		}
	}
	b.ReportMetric(float64(replicas), "replicas")
}
