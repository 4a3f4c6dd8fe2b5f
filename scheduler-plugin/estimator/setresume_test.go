package estimator

import (
	"context"
	"slices"
	"testing"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	frameworkruntime "github.com/karmada-io/karmada/pkg/estimator/server/framework/runtime"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// TestSetAnswersResumeUnderChurn checks the component-set answers brought
// up to date from their rows and checkpoints (setrows.go, setgreedy.go,
// firstfit.go) against the same answers computed afresh, on a cluster large
// enough for several row chunks and checkpoints, while pods come and go on
// nodes at the start of the node order, at chunk and checkpoint
// boundaries, in the middle and at the end, beside random changes.
func TestSetAnswersResumeUnderChurn(t *testing.T) {
	const n = 2600
	c := newChurnCluster(t, 11, n, 4)
	sets := []struct {
		name       string
		components []*pb.Component
	}{
		{"launcher+4x1x40GiB", []*pb.Component{ // greedy pass 0, first-fit binding at times
			comp("launcher", 1, quantities("cpu", "1", "memory", "2Gi")), comp("worker", 4, quantities(resVGPU, "1", resMemory, "40960", "cpu", "4")),
		}},
		{"head1x16GiB+4x2x40GiB", []*pb.Component{ // two GPU components: greedy pass 1
			comp("head", 1, quantities(resVGPU, "1", resMemory, "16384", "cpu", "2")), comp("worker", 4, quantities(resVGPU, "2", resMemory, "81920", "cpu", "4")),
		}},
		{"small+big cpu", []*pb.Component{ // no GPUs: first-fit alone
			comp("small", 2, quantities("cpu", "7")), comp("big", 1, quantities("cpu", "13", "memory", "20Gi")),
		}},
	}
	plain, err := New(config.Default(), c.GPUs, 2)
	if err != nil {
		t.Fatal(err)
	}
	registry, err := Registry(config.Default(), c.GPUs, 2)
	if err != nil {
		t.Fatal(err)
	}
	withStock, err := frameworkruntime.NewFramework(registry)
	if err != nil {
		t.Fatal(err)
	}
	// Positions in the snapshot's node order (the view's): the first ones,
	// both sides of row-chunk and checkpoint boundaries, the middle, the end.
	targets := []int{0, 1, rowChunkNodes - 1, rowChunkNodes, greedyMarkSteps - 1, firstFitMarkNodes, firstFitMarkNodes + 1, n / 2, n - 2, n - 1}
	podsOn := map[string][]int{}
	for i, p := range c.Pods {
		podsOn[p.Spec.NodeName] = append(podsOn[p.Spec.NodeName], i)
	}
	ctx := context.Background()
	var incremental *schedcache.Snapshot
	var resumed int
	ffMarks := map[string]*firstFitMarks{}
	for batch := range 3 * len(targets) {
		snapshot := c.snapshot(t, incremental)
		order, err := snapshot.NodeInfos().List()
		if err != nil {
			t.Fatal(err)
		}
		// One or two targeted changes, sometimes random ones beside them.
		for k := range 1 + batch%2 {
			name := order[targets[(batch+k*3)%len(targets)]].Node().Name
			pods := podsOn[name]
			if len(pods) == 0 {
				continue
			}
			c.togglePod(t, pods[batch%len(pods)])
		}
		if batch%3 == 2 {
			for range 1 + c.Rng.IntN(4) {
				c.Change()
			}
		}
		incremental = c.snapshot(t, snapshot)
		fresh, err := frameworkruntime.NewFramework(registry)
		if err != nil {
			t.Fatal(err)
		}
		reference, err := New(config.Default(), c.GPUs, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sets {
			estCtx := framework.ComponentEstimationContext{Snapshot: incremental, Components: s.components, Namespace: "default"}
			want := outcome(fresh.RunEstimateComponentsPlugins(ctx, estCtx))
			if got := outcome(withStock.RunEstimateComponentsPlugins(ctx, estCtx)); got != want {
				t.Fatalf("batch %d %s with noderesource: brought up to date %s, computed afresh %s", batch, s.name, got, want)
			}
			wantN, _ := reference.EstimateComponents(ctx, estCtx)
			gotN, _ := plain.EstimateComponents(ctx, estCtx)
			if gotN != wantN {
				t.Fatalf("batch %d %s: brought up to date %d sets, computed afresh %d", batch, s.name, gotN, wantN)
			}
			checkGreedyWalk(t, plain, incremental, s.components)
			ffMarks[s.name] = checkFirstFitWalk(t, plain, s.components, ffMarks[s.name])
		}
		if a := plain.memo.setsOf(mustComponentsKey(t, sets[0].components)); a != nil && a.rows.first > 0 {
			resumed++
		}
	}
	// The memo must have brought rows up to date, or resuming was not tested.
	if resumed == 0 {
		t.Error("no answer was brought up to date from earlier rows")
	}
}

// checkGreedyWalk checks the memoised answer's greedy checkpoints against a
// walk from the first node on the same rows: a walk resumed past a change
// shows as different needs at some checkpoint, even where the answer
// happens to be the same.
func checkGreedyWalk(t *testing.T, p *Plugin, snapshot *schedcache.Snapshot, in []*pb.Component) {
	t.Helper()
	a := p.memo.setsOf(mustComponentsKey(t, in))
	if a == nil || a.greedy == nil {
		return
	}
	ctx := context.Background()
	view, err := p.view(ctx, snapshot)
	if err != nil {
		t.Fatal(err)
	}
	components, err := parseComponents(in, p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := newSetSearch(ctx, components, newSetDims(components), nil, a.rows.capacity, setSearchBudget)
	if _, fresh := s.rowGreedy(newSimulation(view), a.rows, a.greedy.k, nil); !slices.EqualFunc(fresh.need, a.greedy.need, slices.Equal) {
		t.Fatalf("greedy checkpoints brought up to date %v, walked from the start %v", a.greedy.need, fresh.need)
	}
}

// checkFirstFitWalk runs the first-fit simulation on the memoised
// answer's rows from prev's checkpoints and from the start, and checks that
// both place the same sets in the same steps; it returns the resumed
// simulation's checkpoints for the next call.
func checkFirstFitWalk(t *testing.T, p *Plugin, in []*pb.Component, prev *firstFitMarks) *firstFitMarks {
	t.Helper()
	a := p.memo.setsOf(mustComponentsKey(t, in))
	if a == nil {
		return nil
	}
	components, err := parseComponents(in, p.cfg)
	if err != nil {
		t.Fatal(err)
	}
	dims := newSetDims(components)
	ctx := context.Background()
	got, resumed, err := firstFitSets(ctx, in, components, dims, a.rows, prev)
	if err != nil {
		t.Fatal(err)
	}
	want, fresh, err := firstFitSets(ctx, in, components, dims, a.rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	same := func(x, y firstFitMark) bool { return x.sets == y.sets && slices.Equal(x.cursor, y.cursor) }
	if got != want || !slices.EqualFunc(resumed.marks, fresh.marks, same) {
		t.Fatalf("first-fit resumed: %d sets, checkpoints %v; from the start: %d sets, %v", got, resumed.marks, want, fresh.marks)
	}
	return resumed
}

func mustComponentsKey(t *testing.T, components []*pb.Component) []byte {
	t.Helper()
	key, err := componentsKey(nil, components)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// togglePod takes bound pod i off its node, or puts it back, in both caches.
func (c *churnCluster) togglePod(t *testing.T, i int) {
	t.Helper()
	p := c.Pods[i]
	if c.Present[i] {
		if err := c.Sched.RemovePod(p); err != nil {
			t.Fatal(err)
		}
		c.GPUs.DeletePod(p)
	} else {
		if err := c.Sched.AddPod(p); err != nil {
			t.Fatal(err)
		}
		c.GPUs.UpsertPod(p)
	}
	c.Present[i] = !c.Present[i]
}
