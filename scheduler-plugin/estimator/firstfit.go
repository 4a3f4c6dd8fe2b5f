package estimator

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/karmada-io/karmada/pkg/estimator"
	"github.com/karmada-io/karmada/pkg/estimator/pb"
)

// Karmada's noderesource plugin answers MaxAvailableComponentSets by
// simulation (estimator.SchedulingSimulator): on a clone of every node's
// available resources, it places one set after another, each component's
// replicas first-fit in the node list's order, until a set does not fit.
// It clones every NodeInfo and restarts each component's walk at the first
// node for every set. firstFitSets gives the same answer from the set
// rows (setrows.go: free resources per node, and where each component
// matches): a node that cannot take a replica of a component (it does not
// match, or its resources no longer hold one) never can again, since
// resources only shrink, so each component keeps a cursor at the first
// node that still might.

// firstFitStep is what a set's placement does at one component of the
// request: place components[c], or fail with err where Karmada's
// simulation would fail to decode it.
type firstFitStep struct {
	c   int
	err error
}

// firstFitSets is Karmada's noderesource answer for the request's
// components in (SimulateScheduling up to MaxInt32 sets); components are
// its non-empty ones as parseComponents lists them, dims and rows theirs.
func firstFitSets(ctx context.Context, in []*pb.Component, components []*component, dims *setDims, rows *setRows) (int32, error) {
	steps, err := firstFitSteps(in, components)
	if err != nil {
		return 0, err
	}
	f := &firstFit{components: components, dims: dims, rows: rows, free: slices.Clone(rows.free), cursor: make([]int, len(components))}
	for sets := int32(0); sets < math.MaxInt32; sets++ {
		if sets%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("simulate Karmada's first-fit placement: %w", err)
			}
		}
		for _, st := range steps {
			if st.err != nil {
				return 0, st.err
			}
			if !f.place(st.c) {
				return sets, nil
			}
		}
		if len(components) == 0 {
			// Every set fits, taking nothing: Karmada counts up to its bound.
			return math.MaxInt32, nil
		}
	}
	return math.MaxInt32, nil
}

// firstFitSteps lists a set's placement steps in the request's order. A
// component without replicas always fits and takes nothing; Karmada
// decodes it all the same, so one that does not decode is an error step.
func firstFitSteps(in []*pb.Component, components []*component) ([]firstFitStep, error) {
	var steps []firstFitStep
	next := 0
	for _, c := range in {
		switch {
		case c == nil:
		case c.GetReplicas() > 0:
			if next == len(components) || components[next].name != c.GetName() {
				return nil, fmt.Errorf("component %q: not among the parsed components", c.GetName())
			}
			steps = append(steps, firstFitStep{c: next})
			next++
		case c.GetReplicaRequirements() != nil:
			rr := c.GetReplicaRequirements()
			if _, err := rr.UnmarshalResourceRequest(); err != nil {
				steps = append(steps, firstFitStep{err: fmt.Errorf("component %q: decode resource request: %w", c.GetName(), err)})
			} else if _, _, err := estimator.GetAffinityAndTolerations(rr.GetNodeClaim()); err != nil {
				steps = append(steps, firstFitStep{err: fmt.Errorf("component %q: decode node claim: %w", c.GetName(), err)})
			}
		}
	}
	if next != len(components) {
		return nil, fmt.Errorf("%d of %d parsed components found in the request", next, len(components))
	}
	return steps, nil
}

// firstFit is one simulation: free is a copy of the rows' free resources
// that placements shrink; cursor[c] is the first node that may still take
// a replica of component c.
type firstFit struct {
	components []*component
	dims       *setDims
	rows       *setRows
	free       []int64
	cursor     []int
}

// place puts all of component c's replicas first-fit from its cursor, and
// reports whether they all found room. Replicas placed before a failure
// stay, as in Karmada's simulation (which then stops).
func (f *firstFit) place(c int) bool {
	nC, w := len(f.components), f.dims.width
	demand := f.dims.demand[c*w : (c+1)*w]
	remaining := f.components[c].replicas
	for ; f.cursor[c] < f.rows.nodes; f.cursor[c]++ {
		i := f.cursor[c]
		if f.rows.room[i*nC+c] == 0 {
			continue // it does not match, or never had room
		}
		free := f.free[i*w : (i+1)*w]
		k := min(f.dims.copies(c, free), remaining)
		if k == 0 {
			continue
		}
		for d, dc := range demand {
			free[d] -= dc * k // k is within what is free: no overflow, no clamp
		}
		if remaining -= k; remaining == 0 {
			return true // the node may take more: the cursor stays
		}
	}
	return false
}
