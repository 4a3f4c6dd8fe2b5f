package estimator

import (
	"context"
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	schedulerframework "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework"
)

// Karmada's noderesource plugin answers MaxAvailableComponentSets by
// simulation (estimator.SchedulingSimulator): on a clone of every node's
// available resources, it places one set after another, each component's
// replicas first-fit in the node list's order, until a set does not fit.
// It clones every NodeInfo and restarts each component's walk at the first
// node for every set. firstFitSets gives the same answer on flat vectors:
// a node that cannot take a replica of a component (it does not match, or
// its resources do not hold one) never can again, since resources only
// shrink, so each component keeps a cursor at the first node that still
// might, and nodes are read when a cursor first reaches them.

// ffComponent is one component as the simulation places it.
type ffComponent struct {
	replicas int64
	claim    nodeClaim
	// demand is per dimension (readFree's): the pod (1), then what the
	// replica asks of cpu, memory, ephemeral storage and each scalar.
	demand []int64
	// err is the component's decoding error, reported where Karmada's
	// simulation decodes it: when a set first reaches the component.
	err error
	// cursor is the first node that may still take a replica; matched is
	// the node known to match the claim (-1 for none yet).
	cursor, matched int
}

// firstFit is one simulation over the view's nodes.
type firstFit struct {
	nodes      []*schedulerframework.NodeInfo
	scalars    []corev1.ResourceName
	width      int
	free       []int64 // node i's at [i*width, (i+1)*width), once read[i]
	read       []bool
	components []ffComponent
}

// firstFitSets is Karmada's noderesource answer for the components on the
// view's nodes (SimulateScheduling with no upper bound but MaxInt32).
func firstFitSets(ctx context.Context, view *clusterView, in []*pb.Component) (int32, error) {
	f := newFirstFit(view, in)
	consumes := false
	for sets := int32(0); sets < math.MaxInt32; sets++ {
		if sets%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, fmt.Errorf("simulate Karmada's first-fit placement: %w", err)
			}
		}
		for j := range f.components {
			c := &f.components[j]
			if c.err != nil {
				return 0, c.err
			}
			if c.replicas == 0 {
				continue // it always fits, taking nothing
			}
			consumes = true
			if !f.place(c) {
				return sets, nil
			}
		}
		if !consumes {
			// Every set fits, taking nothing: Karmada counts up to its bound.
			return math.MaxInt32, nil
		}
	}
	return math.MaxInt32, nil
}

func newFirstFit(view *clusterView, in []*pb.Component) *firstFit {
	f := &firstFit{nodes: view.nodes}
	demands := make([]ResourceDemand, 0, len(in))
	for _, c := range in {
		if c == nil {
			continue // Karmada's simulation passes nil components
		}
		fc := ffComponent{replicas: int64(c.GetReplicas()), matched: -1}
		var d ResourceDemand
		if rr := c.GetReplicaRequirements(); rr != nil {
			rl, err := rr.UnmarshalResourceRequest()
			if err != nil {
				fc.err = fmt.Errorf("component %q: decode resource request: %w", c.GetName(), err)
			} else if fc.claim, err = parseNodeClaim(rr.GetNodeClaim()); err != nil {
				fc.err = fmt.Errorf("component %q: %w", c.GetName(), err)
			}
			d = demandOf(rl)
		}
		for _, s := range d.Scalars {
			if !containsName(f.scalars, s.Name) {
				f.scalars = append(f.scalars, s.Name)
			}
		}
		demands = append(demands, d)
		f.components = append(f.components, fc)
	}
	f.width = fixedDims + len(f.scalars)
	for j := range f.components {
		d := &demands[j]
		row := make([]int64, f.width)
		row[0], row[1], row[2], row[3] = 1, d.MilliCPU, d.Memory, d.EphemeralStorage
		for _, s := range d.Scalars {
			for k, name := range f.scalars {
				if name == s.Name {
					row[fixedDims+k] = s.Value
				}
			}
		}
		f.components[j].demand = row
	}
	f.free = make([]int64, len(f.nodes)*f.width)
	f.read = make([]bool, len(f.nodes))
	return f
}

// place puts all of c's replicas first-fit from its cursor, and reports
// whether they all found room. Replicas placed before a failure stay, as
// in Karmada's simulation (which then stops).
func (f *firstFit) place(c *ffComponent) bool {
	remaining := c.replicas
	for ; c.cursor < len(f.nodes); c.cursor++ {
		i := c.cursor
		if c.matched != i {
			if !c.claim.matches(f.nodes[i]) {
				continue
			}
			c.matched = i
		}
		free := f.freeOf(i)
		k := free[0]
		for d, dc := range c.demand[1:] {
			if dc > 0 {
				k = min(k, free[d+1]/dc)
			}
		}
		if k == 0 {
			continue
		}
		k = min(k, remaining)
		for d, dc := range c.demand {
			free[d] -= dc * k // k is within what is free: no overflow, no clamp
		}
		if remaining -= k; remaining == 0 {
			return true // the node may take more: the cursor stays
		}
	}
	return false
}

// freeOf is node i's free vector, read on first use.
func (f *firstFit) freeOf(i int) []int64 {
	v := f.free[i*f.width : (i+1)*f.width]
	if !f.read[i] {
		f.read[i] = true
		readFree(f.nodes[i], nil, f.scalars, v)
	}
	return v
}
