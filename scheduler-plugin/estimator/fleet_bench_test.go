package estimator

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins/noderesource"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"
	"github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework/parallelize"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// churnPerSecond is the pod and node changes the informers apply while
// the loaded benchmarks ask.
const churnPerSecond = 100

// callersPerProc times GOMAXPROCS is the number of concurrent callers of
// the loaded benchmarks: 16 on the 2-CPU machine of docs/benchmarks.md.
const callersPerProc = 8

// BenchmarkFleet answers MaxAvailableReplicas and MaxAvailableComponentSets
// on 5,000 and 50,000 nodes of 8 fragmented GPUs (4 GPU pods per node),
// quiet (one caller, nothing changing) and loaded (callersPerProc x
// GOMAXPROCS callers while churnPerSecond changes go through the caches'
// own calls and Karmada's snapshot is kept up to date), with and without
// the memo, beside Karmada's noderesource plugin on the same snapshot.
// ns/op of a loaded benchmark is wall time per answer over all callers.
func BenchmarkFleet(b *testing.B) {
	for _, size := range []int{5000, 50000} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) { benchFleet(b, size) })
	}
}

func benchFleet(b *testing.B, size int) {
	c := newChurnCluster(b, 1, size, 4)
	b.ReportMetric(0, "ns/op") // the parent's own line carries no time
	c.GPUs.Snapshot()          // published before weighing the plugin
	gpuBytes := tc.HeapGrowth(func() any { return rebuildGPUCache(c) })
	live := newLiveSnapshots(b, c)
	shapes := []*pb.ReplicaRequirements{
		replicaRequirements(quantities(resVGPU, "1", resMemory, "16384", resCores, "25", "cpu", "1", "memory", "2Gi"), nil),
		replicaRequirements(quantities(resVGPU, "2", resMemory, "81920", "cpu", "4", "memory", "8Gi"), nil),
		replicaRequirements(quantities(resVGPU, "1", resMemory, "8192", "cpu", "1"), &pb.NodeClaim{NodeSelector: map[string]string{"zone": "a"}}),
		replicaRequirements(quantities(resVGPU, "1", resMemory, "24576", "cpu", "2"), nil),
	}
	set := []*pb.Component{
		comp("launcher", 1, quantities("cpu", "1", "memory", "2Gi")),
		comp("worker", 8, quantities(resVGPU, "1", resMemory, "40960", "cpu", "4", "memory", "8Gi")),
	}
	newPlugin := func(opts ...Option) *Plugin {
		p, err := New(config.Default(), c.GPUs, 0, opts...)
		if err != nil {
			b.Fatal(err)
		}
		p.parallelizer = parallelize.NewParallelizer(0) // the stock plugin's default
		return p
	}
	uncached := newPlugin(WithoutMemo())
	var memoised *Plugin
	memoBytes := tc.HeapGrowth(func() any {
		memoised = newPlugin()
		live.read(func(s *schedcache.Snapshot) {
			for _, rr := range shapes {
				estimate(b, memoised, s, rr)
			}
		})
		return memoised
	})
	stock, err := noderesource.New(stockHandle{})
	if err != nil {
		b.Fatal(err)
	}
	perNode := func(bytes uint64) float64 { return float64(bytes) / float64(size) }

	// What the server spends per request before any plugin runs: a new
	// snapshot of Karmada's scheduler cache, as Karmada's estimator takes.
	b.Run("server_snapshot/quiet", func(b *testing.B) {
		for b.Loop() {
			c.snapshot(b, nil)
		}
	})
	// The server's pooled snapshot instead (server/snapshots.go): one
	// change, then UpdateSnapshot on a snapshot kept from before it.
	b.Run("server_snapshot_pooled/one_change", func(b *testing.B) {
		kept := c.snapshot(b, nil)
		for b.Loop() {
			c.Change()
			c.snapshot(b, kept)
		}
	})
	b.Run("noderesource/quiet", func(b *testing.B) {
		live.read(func(s *schedcache.Snapshot) {
			for b.Loop() {
				estimate(b, stock.(framework.EstimateReplicasPlugin), s, shapes[0])
			}
		})
	})
	for _, p := range []struct {
		name   string
		plugin *Plugin
	}{{"tessera_uncached", uncached}, {"tessera", memoised}} {
		b.Run(p.name+"/quiet", func(b *testing.B) {
			live.read(func(s *schedcache.Snapshot) {
				for b.Loop() {
					estimate(b, p.plugin, s, shapes[0])
				}
			})
		})
		b.Run(p.name+"/loaded", func(b *testing.B) {
			runLoaded(b, c, live, func(s *schedcache.Snapshot, n int) { estimate(b, p.plugin, s, shapes[n%len(shapes)]) })
			if p.plugin == memoised {
				b.ReportMetric(perNode(gpuBytes), "gpucache-B/node")
				b.ReportMetric(perNode(memoBytes), "table+4memos-B/node")
			}
		})
		b.Run(p.name+"/sets_loaded", func(b *testing.B) {
			runLoaded(b, c, live, func(s *schedcache.Snapshot, _ int) {
				if _, ret := p.plugin.EstimateComponents(context.Background(), framework.ComponentEstimationContext{Snapshot: s, Components: set}); !ret.IsSuccess() {
					b.Error(ret.Reasons())
				}
			})
		})
	}
}

func estimate(b *testing.B, p framework.EstimateReplicasPlugin, s *schedcache.Snapshot, rr *pb.ReplicaRequirements) {
	if _, ret := p.Estimate(context.Background(), framework.ReplicaEstimationContext{Snapshot: s, ReplicaRequirements: rr}); !ret.IsSuccess() {
		b.Errorf("%s: %v", p.Name(), ret.Reasons())
	}
}

// runLoaded has callersPerProc x GOMAXPROCS goroutines call ask while one
// goroutine applies churnPerSecond changes and publishes Karmada's
// snapshot after each.
func runLoaded(b *testing.B, c *churnCluster, live *liveSnapshots, ask func(*schedcache.Snapshot, int)) {
	rate := tc.ChurnWhile(churnPerSecond, func() {
		c.Change()
		live.publish(b, c)
	}, func() {
		b.SetParallelism(callersPerProc)
		var caller atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			n := int(caller.Add(1))
			for pb.Next() {
				live.read(func(s *schedcache.Snapshot) { ask(s, n) })
				n++
			}
		})
	})
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(float64(callersPerProc*runtime.GOMAXPROCS(0)), "callers")
}

// rebuildGPUCache builds a second GPU cache from the cluster's objects, to
// weigh what the cache itself holds.
func rebuildGPUCache(c *churnCluster) *gpucache.Cache {
	g := gpucache.New(annotations.DefaultKeys())
	for _, n := range c.Nodes {
		g.UpsertNode(n)
	}
	for i, p := range c.Pods {
		if c.Present[i] {
			g.UpsertPod(p)
		}
	}
	g.Snapshot()
	return g
}
