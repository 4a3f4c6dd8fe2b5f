package estimator

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
)

// EstimateComponents answers MaxAvailableComponentSets: how many complete
// sets of a multi-component workload (for example one launcher and eight
// GPU workers) fit in the cluster.
//
// How exact it is:
//   - A set with one component is exact: its replicas are independent, so
//     the answer is the per-node exact capacity summed over matching nodes,
//     divided by the replicas per set.
//   - For several components, the answer is never above the tightest
//     single-component bound (each component alone, exact), and is found by
//     placing whole sets first-fit over the nodes, as Karmada's own
//     SchedulingSimulator does, but placing GPUs with the extender's
//     algorithm (vgpu.Place) on the simulated per-GPU state. Every set it
//     counts is a real placement, so it never overcounts; first-fit can
//     undercount when another assignment of components to nodes would fit
//     more sets (that packing problem is NP-hard in general).
func (p *Plugin) EstimateComponents(ctx context.Context, estCtx framework.ComponentEstimationContext) (int32, *framework.Result) {
	components, err := parseComponents(estCtx.Components, p.cfg)
	if err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	if !slices.ContainsFunc(components, func(c *component) bool { return c.req.AsksForGPUs }) {
		return math.MaxInt32, framework.NewResult(framework.Noopperation, fmt.Sprintf("%s: no Tessera resources requested", Name))
	}
	view, err := p.view(estCtx.Snapshot)
	if err != nil {
		return 0, framework.AsResult(err)
	}
	sim := newSimulation(view)
	if err := sim.deductAssumed(ctx, estCtx.AssumedWorkloads, p.cfg); err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	// Each component alone bounds the sets exactly; for one component that
	// bound is the answer.
	bound := int64(math.MaxInt32)
	for _, c := range components {
		capacity := p.sumOverNodes(ctx, view, sim, &c.req)
		bound = min(bound, capacity/c.replicas)
	}
	if err := ctx.Err(); err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	sets := bound
	if len(components) > 1 && bound > 0 {
		if sets, err = sim.placeSets(ctx, components, bound); err != nil {
			return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
		}
	}
	if sets == 0 {
		return 0, framework.NewResult(framework.Unschedulable, fmt.Sprintf("%s: not enough GPU or node resources for one set", Name))
	}
	return clampInt32(sets), framework.NewResult(framework.Success)
}
