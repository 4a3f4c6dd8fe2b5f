package estimator

import (
	"context"
	"fmt"
	"math"
	"slices"

	"google.golang.org/grpc/metadata"
	"k8s.io/klog/v2"

	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	"github.com/karmada-io/karmada/pkg/util"
)

// EstimateComponents answers MaxAvailableComponentSets: how many complete
// sets of a multi-component workload (for example one launcher and eight
// GPU workers) fit in the cluster.
//
// The answer is exact: it is the largest k for which every replica of
// every component of k sets has a node (matching its selector, affinity and
// tolerations) and GPUs, with all replicas on a node fitting there together
// by their ordinary resources and by the one fit algorithm
// (vgpu.FitTogether, vgpu.MaxReplicas). Each component alone bounds k from
// above (exact per template); a greedy pass usually reaches that bound,
// and otherwise an exact search over count vectors per node (setsearch.go)
// closes the gap from first-fit's answer. Only when that search runs out of
// its step budget is the answer a lower bound (never more than fits); that
// is counted in a metric and logged once per workload.
func (p *Plugin) EstimateComponents(ctx context.Context, estCtx framework.ComponentEstimationContext) (int32, *framework.Result) {
	withStock := p.stock != nil
	if withStock && (p.memo == nil || len(estCtx.AssumedWorkloads) > 0) {
		s, sret := p.stock.EstimateComponents(ctx, estCtx)
		n, ret := p.estimateComponents(ctx, estCtx, false)
		return mergeAnswers(answer{s, sret}, answer{n, ret}, false)
	}
	return p.estimateComponents(ctx, estCtx, withStock)
}

// estimateComponents is Tessera's answer, and with withStock the lesser of
// it and Karmada's noderesource answer (its first-fit simulation,
// firstfit.go), both memoised. An answered shape is looked up before the
// request is decoded.
func (p *Plugin) estimateComponents(ctx context.Context, estCtx framework.ComponentEstimationContext, withStock bool) (int32, *framework.Result) {
	var key []byte
	var view *clusterView
	var err error
	if p.memo != nil && len(estCtx.AssumedWorkloads) == 0 && len(estCtx.Components) > 0 {
		buf := p.memo.keyBuffer()
		defer p.memo.keys.Put(buf)
		key, err = componentsKey(*buf, estCtx.Components)
		*buf = key
		if err != nil {
			return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
		}
		if view, err = p.view(ctx, estCtx.Snapshot); err != nil {
			return 0, framework.AsResult(err)
		}
		if a := p.memo.setsOf(key); a != nil && a.epoch == view.table.epoch {
			return p.setsResult(ctx, estCtx, a, withStock, nil)
		}
	}
	components, err := parseComponents(estCtx.Components, p.cfg)
	if err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	gpus := slices.ContainsFunc(components, func(c *component) bool { return c.req.AsksForGPUs })
	if !gpus && (!withStock || len(estCtx.Components) == 0) {
		// Karmada's noderesource has no answer for an empty list either.
		return math.MaxInt32, framework.NewResult(framework.Noopperation, fmt.Sprintf("%s: no Tessera resources requested", Name))
	}
	if view == nil {
		if view, err = p.view(ctx, estCtx.Snapshot); err != nil {
			return 0, framework.AsResult(err)
		}
	}
	a, err := p.componentSets(ctx, view, estCtx, components, gpus, withStock, key)
	if err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	return p.setsResult(ctx, estCtx, a, withStock, components)
}

// setsResult is the plugin's answer from a (memoised) one; components are
// the request's, decoded, or nil where it was not decoded.
func (p *Plugin) setsResult(ctx context.Context, estCtx framework.ComponentEstimationContext, a *setsAnswer, withStock bool, components []*component) (int32, *framework.Result) {
	if a.gpus && !a.exact {
		if components == nil {
			components, _ = parseComponents(estCtx.Components, p.cfg) // it decoded when answered
		}
		p.budgetExhausted(ctx, estCtx, components, a.sets)
	}
	switch {
	case withStock && a.firstFit == 0:
		return 0, framework.NewResult(framework.Unschedulable, fmt.Sprintf("%s: not enough node resources for one set", Name))
	case !a.gpus:
		return a.firstFit, framework.NewResult(framework.Success)
	case a.sets == 0:
		return 0, framework.NewResult(framework.Unschedulable, fmt.Sprintf("%s: not enough GPU or node resources for one set", Name))
	case withStock:
		return min(clampInt32(a.sets), a.firstFit), framework.NewResult(framework.Success)
	}
	return clampInt32(a.sets), framework.NewResult(framework.Success)
}

// componentSets is the answer (Tessera's where gpus, the first-fit one
// where withStock), memoised by the request's shape while the nodes' state
// stays (memo.go): the same answer for the same components on the same
// nodes. Concurrent requests for the same shape and state wait for one
// computation. In-flight workloads differ from one request to the next and
// are never memoised.
func (p *Plugin) componentSets(ctx context.Context, view *clusterView, estCtx framework.ComponentEstimationContext, components []*component, gpus, withStock bool, key []byte) (*setsAnswer, error) {
	memoised := key != nil
	var prev *setsAnswer // the shape's last answer, for its rows
	compute := func() (*setsAnswer, error) {
		sim := newSimulation(view)
		if err := p.deductAssumed(ctx, sim, estCtx.AssumedWorkloads); err != nil {
			return nil, err
		}
		dims := newSetDims(components)
		var prevRows *setRows
		var prevMarks *greedyMarks
		var prevFirstFit *firstFitMarks
		if prev != nil {
			prevRows, prevMarks, prevFirstFit = prev.rows, prev.greedy, prev.firstFitMarks
		}
		rows := p.setRowsFor(ctx, sim, components, dims, prevRows)
		if err := ctx.Err(); err != nil {
			return nil, err // an interrupted pass leaves rows unread
		}
		a := &setsAnswer{epoch: view.table.epoch, exact: true, gpus: gpus}
		if memoised {
			a.rows = rows
		}
		var err error
		if withStock {
			var marks *firstFitMarks
			if a.firstFit, marks, err = firstFitSets(ctx, estCtx.Components, components, dims, rows, prevFirstFit); err != nil {
				return nil, err
			}
			if memoised {
				a.firstFitMarks = marks
			}
		}
		if gpus {
			var marks *greedyMarks
			a.sets, a.exact, marks = p.maxSets(ctx, sim, components, dims, rows, prevMarks)
			if memoised {
				a.greedy = marks
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return a, nil
	}
	if !memoised {
		return compute()
	}
	prev = p.memo.setsOf(key)
	if prev != nil && prev.epoch == view.table.epoch {
		return prev, nil
	}
	f, leader := p.memo.joinSets(key, view.table.epoch)
	if !leader {
		select {
		case <-f.done:
			if f.answer != nil {
				return f.answer, nil
			}
			// The leader was interrupted: compute it here.
			return compute()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	var a *setsAnswer
	defer func() { p.memo.landSets(key, f, a) }()
	a, err := compute()
	return a, err
}

// maxSets is the number of complete sets that fit on the simulated
// cluster, and whether it is proven exact. The greedy pass toward the
// per-component bound usually settles it, walking the rows from prev's
// last checkpoint before the first change (setgreedy.go); only where it
// does not are the node list and the search built.
func (p *Plugin) maxSets(ctx context.Context, sim *simulation, components []*component, dims *setDims, rows *setRows, prev *greedyMarks) (int64, bool, *greedyMarks) {
	upper := upperBound(components, rows.capacity)
	if upper == 0 || len(components) == 1 {
		return upper, true, nil // one component: its replicas are independent
	}
	ok, marks := newSetSearch(ctx, components, dims, nil, rows.capacity, setSearchBudget).rowGreedy(sim, rows, upper, prev)
	if ok {
		return upper, true, marks
	}
	nodes, capacity := setNodes(sim, components, rows)
	s := newSetSearch(ctx, components, dims, nodes, capacity, setSearchBudget)
	sets, exact := s.maxSets(upper, func(limit int64) int64 {
		// placeSets moves each component's cursor: give it fresh ones.
		fresh := make([]*component, len(components))
		for i, c := range components {
			copied := *c
			copied.cursor = 0
			fresh[i] = &copied
		}
		sets, err := sim.clone().placeSets(ctx, fresh, limit)
		if err != nil {
			return 0
		}
		return sets
	})
	return sets, exact, marks
}

// budgetExhausted records an answer that is a lower bound only: the
// metric counts every one, the log names each workload once.
func (p *Plugin) budgetExhausted(ctx context.Context, estCtx framework.ComponentEstimationContext, components []*component, sets int64) {
	if p.budgetCounter != nil {
		p.budgetCounter.Inc()
	}
	object := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if m := md.Get(string(util.ContextKeyObject)); len(m) != 0 {
			object = m[0]
		}
	}
	names := make([]string, 0, len(components))
	for _, c := range components {
		names = append(names, fmt.Sprintf("%s x%d", c.name, c.replicas))
	}
	id := fmt.Sprintf("%s/%s %v", estCtx.Namespace, object, names)
	if !p.logOnce.first(id) {
		return
	}
	klog.InfoS("Component-set search ran out of its budget; answering the best proven count, which may be below what fits",
		"namespace", estCtx.Namespace, "object", object, "components", names, "sets", sets, "budget", setSearchBudget)
}
