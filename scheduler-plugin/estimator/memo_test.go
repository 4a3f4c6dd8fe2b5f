package estimator

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// exactSum is the estimate computed the plain way, with nothing of the
// memo or the node table: every node of the snapshot, its GPU state looked
// up by name, the per-node minimum summed.
func exactSum(t *testing.T, snapshot *schedcache.Snapshot, gpus *gpucache.Snapshot, rr *pb.ReplicaRequirements) int32 {
	t.Helper()
	req, err := ParseReplicaRequirements(rr, config.Default())
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := snapshot.NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, ni := range nodes {
		if !req.matches(ni) {
			continue
		}
		g, _ := gpus.Node(ni.Node().Name)
		n := req.copiesOn(ni, nil, nil)
		if g != nil {
			n = req.copiesOn(ni, g.Devices, nil)
		}
		total += min(n, math.MaxInt32)
	}
	return clampInt32(total)
}

// TestMemoMatchesExactUnderChurn applies random batches of pod and node
// changes through the caches' own calls and, after each batch, compares
// every memoised answer with one computed from scratch: replicas against
// exactSum, component sets against a plugin without memo whose node table
// is rebuilt by name for every question. Shapes are asked at random, so
// memos are brought up to date across one or many epochs, or recomputed.
func TestMemoMatchesExactUnderChurn(t *testing.T) {
	tolerate := &pb.NodeClaim{Tolerations: []*corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "reserved", Effect: corev1.TaintEffectNoSchedule}}}
	zoneA := &pb.NodeClaim{NodeSelector: map[string]string{"zone": "a"}}
	notB := &pb.NodeClaim{NodeAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"b"}},
	}}}}}
	shapes := []struct {
		name string
		rr   *pb.ReplicaRequirements
	}{
		{"1x16GiB", replicaRequirements(quantities(resVGPU, "1", resMemory, "16384", resCores, "25", "cpu", "1", "memory", "2Gi"), nil)},
		{"2x40GiB", replicaRequirements(quantities(resVGPU, "2", resMemory, "81920", "cpu", "4", "memory", "8Gi"), nil)},
		{"1x40GiB cpu-bound", replicaRequirements(quantities(resVGPU, "1", resMemory, "40960", "cpu", "20"), nil)},
		{"1x8GiB zone a", replicaRequirements(quantities(resVGPU, "1", resMemory, "8192", "cpu", "1"), zoneA)},
		{"1x8GiB tolerates", replicaRequirements(quantities(resVGPU, "1", resMemory, "8192", "cpu", "1"), tolerate)},
		{"1x24GiB not zone b, tolerates", replicaRequirements(quantities(resVGPU, "1", resMemory, "24576", "cpu", "2"), &pb.NodeClaim{
			NodeAffinity: notB.NodeAffinity, Tolerations: tolerate.Tolerations,
		})},
	}
	sets := []struct {
		name       string
		components []*pb.Component
	}{
		{"launcher+4x1x40GiB", []*pb.Component{
			comp("launcher", 1, quantities("cpu", "1", "memory", "2Gi")), comp("worker", 4, quantities(resVGPU, "1", resMemory, "40960", "cpu", "4")),
		}},
		{"head+2x2x32GiB zone a", []*pb.Component{
			{Name: "head", Replicas: 1, ReplicaRequirements: &pb.ComponentReplicaRequirements{NodeClaim: zoneA}},
			comp("worker", 2, quantities(resVGPU, "2", resMemory, "65536", "cpu", "2")),
		}},
	}
	sets[1].components[0].ReplicaRequirements.MustSetResourceRequest(quantities(resVGPU, "1", resMemory, "16384", "cpu", "1"))

	c := newChurnCluster(t, 3, 300, 4)
	memoised, err := New(config.Default(), c.GPUs, 2)
	if err != nil {
		t.Fatal(err)
	}
	reference, err := New(config.Default(), c.GPUs, 2, WithoutMemo())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cpuOnly := replicaRequirements(quantities("cpu", "1"), nil)
	for range 2 { // decoded, then known by its shape
		if _, ret := memoised.Estimate(ctx, framework.ReplicaEstimationContext{Snapshot: c.snapshot(t, nil), ReplicaRequirements: cpuOnly}); !ret.IsNoOperation() {
			t.Fatalf("a request without Tessera resources: %v, want no operation", ret.Reasons())
		}
	}
	// CPU pods change only Karmada's cache (the GPU cache ignores them, so
	// its snapshot stays): batches of them alone leave only the snapshot's
	// version to tell that the nodes changed.
	var cpuPods []*corev1.Pod
	cpuPresent := map[int]bool{}
	for i := range 40 {
		cpuPods = append(cpuPods, tc.Pod(fmt.Sprintf("cpu-%d", i), c.Nodes[c.Rng.IntN(len(c.Nodes))].Name, 24000, 1<<30))
	}
	var incremental *schedcache.Snapshot
	for batch := range 150 {
		changes := 1 + c.Rng.IntN(6)
		if batch%25 == 24 {
			changes = 80 // past incrementalShare: a full pass
		}
		for range changes {
			if batch%4 != 2 {
				c.Change()
				continue
			}
			i := c.Rng.IntN(len(cpuPods))
			if cpuPresent[i] {
				_ = c.Sched.RemovePod(cpuPods[i])
			} else if err := c.Sched.AddPod(cpuPods[i]); err != nil {
				t.Fatal(err)
			}
			cpuPresent[i] = !cpuPresent[i]
		}
		// Mix a snapshot kept up to date in place (NodeInfos edited under
		// the same pointers, its version told as the server's snapshot pool
		// tells it; the CPU-only batches follow one) with a fresh one (new
		// pointers, same generations, no version).
		snapshot := c.snapshot(t, nil)
		ctx := context.Background()
		if batch%4 != 0 {
			incremental = c.snapshot(t, incremental)
			snapshot = incremental
			ctx = WithSnapshotVersion(ctx, SnapshotVersion{Snapshot: incremental, Version: uint64(batch)})
		}
		gpus := c.GPUs.Snapshot()
		for _, s := range shapes {
			if c.Rng.IntN(3) == 0 {
				continue // left behind for a few epochs
			}
			want := exactSum(t, snapshot, gpus, s.rr)
			for range 2 { // a miss or an update, then a hit
				got, ret := memoised.Estimate(ctx, framework.ReplicaEstimationContext{Snapshot: snapshot, ReplicaRequirements: s.rr})
				if !ret.IsSuccess() {
					t.Fatalf("batch %d %s: %v", batch, s.name, ret.Reasons())
				}
				if got != want {
					t.Fatalf("batch %d %s: memoised %d, exact %d", batch, s.name, got, want)
				}
			}
		}
		for _, s := range sets {
			reference.tables.last.Store(nil)
			want, _ := reference.EstimateComponents(ctx, framework.ComponentEstimationContext{Snapshot: snapshot, Components: s.components})
			got, _ := memoised.EstimateComponents(ctx, framework.ComponentEstimationContext{Snapshot: snapshot, Components: s.components})
			if got != want {
				t.Fatalf("batch %d %s: memoised %d sets, exact %d", batch, s.name, got, want)
			}
		}
	}
}

// TestMemoConcurrentChurn has callers share the memo and node table while
// changes go on (run it with -race), then checks the answers once the
// cluster is quiet: whatever concurrent callers left in the memo must
// still be exact.
func TestMemoConcurrentChurn(t *testing.T) {
	c := newChurnCluster(t, 9, 200, 4)
	p, err := New(config.Default(), c.GPUs, 2)
	if err != nil {
		t.Fatal(err)
	}
	shapes := []*pb.ReplicaRequirements{
		replicaRequirements(quantities(resVGPU, "1", resMemory, "16384", "cpu", "1"), nil),
		replicaRequirements(quantities(resVGPU, "2", resMemory, "40960", "cpu", "2"), &pb.NodeClaim{NodeSelector: map[string]string{"zone": "a"}}),
	}
	set := []*pb.Component{comp("launcher", 1, quantities("cpu", "1")), comp("worker", 4, quantities(resVGPU, "1", resMemory, "40960"))}
	live := newLiveSnapshots(t, c)
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				live.read(func(s *schedcache.Snapshot) {
					if (g+n)%3 == 0 {
						p.EstimateComponents(ctx, framework.ComponentEstimationContext{Snapshot: s, Components: set})
						return
					}
					p.Estimate(ctx, framework.ReplicaEstimationContext{Snapshot: s, ReplicaRequirements: shapes[(g+n)%len(shapes)]})
				})
			}
		}()
	}
	for range 300 {
		c.Change()
		live.publish(t, c)
	}
	close(done)
	wg.Wait()

	snapshot := c.snapshot(t, nil)
	for i, rr := range shapes {
		got, _ := p.Estimate(ctx, framework.ReplicaEstimationContext{Snapshot: snapshot, ReplicaRequirements: rr})
		if want := exactSum(t, snapshot, c.GPUs.Snapshot(), rr); got != want {
			t.Errorf("shape %d: memoised %d, exact %d", i, got, want)
		}
	}
	reference, err := New(config.Default(), c.GPUs, 2, WithoutMemo())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := reference.EstimateComponents(ctx, framework.ComponentEstimationContext{Snapshot: snapshot, Components: set})
	if got, _ := p.EstimateComponents(ctx, framework.ComponentEstimationContext{Snapshot: snapshot, Components: set}); got != want {
		t.Errorf("sets: memoised %d, exact %d", got, want)
	}
}
