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
// It resumes from prev's last checkpoint before the rows' first change
// (prev: the checkpoints of the same shape's answer on the rows these
// were brought up to date from), and returns its own checkpoints.
func firstFitSets(ctx context.Context, in []*pb.Component, components []*component, dims *setDims, rows *setRows, prev *firstFitMarks) (int32, *firstFitMarks, error) {
	steps, err := firstFitSteps(in, components)
	if err != nil {
		return 0, nil, err
	}
	f := &firstFit{components: components, dims: dims, rows: rows, cursor: make([]int, len(components)),
		overlay: make([]*freeChunk, len(rows.chunks)), marks: &firstFitMarks{nodes: rows.nodes}}
	start := f.resume(prev)
	for sets := start; sets < math.MaxInt32; sets++ {
		if sets%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, nil, fmt.Errorf("simulate Karmada's first-fit placement: %w", err)
			}
		}
		f.mark(sets)
		for _, st := range steps {
			if st.err != nil {
				return 0, nil, st.err
			}
			if !f.place(st.c) {
				return sets, f.marks, nil
			}
		}
		if len(components) == 0 {
			// Every set fits, taking nothing: Karmada counts up to its bound.
			return math.MaxInt32, nil, nil
		}
	}
	return math.MaxInt32, f.marks, nil
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

// firstFit is one simulation: overlay holds, per chunk of the rows
// (setrows.go), the free resources placements shrank, nil where they shrank
// nothing there (the rows' own are read); cursor[c] is the first node that
// may still take a replica of component c.
type firstFit struct {
	components []*component
	dims       *setDims
	rows       *setRows
	overlay    []*freeChunk
	cursor     []int
	marks      *firstFitMarks
	gen        int
}

// freeChunk is a chunk's free resources as placements left them. A chunk a
// checkpoint holds is never written again: owner and gen name the
// simulation and the stretch between checkpoints that may write it.
type freeChunk struct {
	free  []int64
	owner *firstFit
	gen   int
}

// firstFitMarks are a simulation's checkpoints, taken before a set when
// the furthest cursor has passed another firstFitMarkNodes nodes, in the
// order taken.
type firstFitMarks struct {
	nodes int
	marks []firstFitMark
}

type firstFitMark struct {
	sets    int32
	cursor  []int
	overlay []*freeChunk
}

// firstFitMarkNodes is how far the furthest cursor moves between
// checkpoints; a checkpoint costs a copy of the chunk list.
const firstFitMarkNodes = 1024

func (f *firstFit) furthest() int { return slices.Max(f.cursor) }

// mark takes a checkpoint before set number sets where one is due.
func (f *firstFit) mark(sets int32) {
	m := f.marks.marks
	if len(m) > 0 && slices.Max(m[len(m)-1].cursor)/firstFitMarkNodes >= f.furthest()/firstFitMarkNodes {
		return
	}
	f.marks.marks = append(m, firstFitMark{sets: sets, cursor: slices.Clone(f.cursor), overlay: slices.Clone(f.overlay)})
	f.gen++
}

// resume starts the simulation at prev's last checkpoint whose placements
// all lie in chunks before the rows' first change, keeping the
// checkpoints up to it, and returns the sets placed by then.
func (f *firstFit) resume(prev *firstFitMarks) int32 {
	if prev == nil || prev.nodes != f.rows.nodes || len(f.components) == 0 {
		return 0
	}
	limit := f.rows.first / rowChunkNodes
	for k := len(prev.marks) - 1; k > 0; k-- {
		m := prev.marks[k]
		if slices.Max(m.cursor)/rowChunkNodes >= limit {
			continue
		}
		f.marks.marks = append(f.marks.marks, prev.marks[:k]...)
		copy(f.cursor, m.cursor)
		copy(f.overlay, m.overlay)
		return m.sets
	}
	return 0
}

// freeOf is node i's free resources, writable: its chunk is copied the
// first time this stretch of the simulation writes it.
func (f *firstFit) freeOf(i int) []int64 {
	j, k, w := i/rowChunkNodes, i%rowChunkNodes, f.rows.width
	c := f.overlay[j]
	if c == nil || c.owner != f || c.gen != f.gen {
		from := f.rows.chunks[j].free
		if c != nil {
			from = c.free
		}
		c = &freeChunk{free: slices.Clone(from), owner: f, gen: f.gen}
		f.overlay[j] = c
	}
	return c.free[k*w : (k+1)*w : (k+1)*w]
}

// readFree is node i's free resources, to read.
func (f *firstFit) readFree(i int) []int64 {
	if c := f.overlay[i/rowChunkNodes]; c != nil {
		k, w := i%rowChunkNodes, f.rows.width
		return c.free[k*w : (k+1)*w]
	}
	return f.rows.free(i)
}

// place puts all of component c's replicas first-fit from its cursor, and
// reports whether they all found room. Replicas placed before a failure
// stay, as in Karmada's simulation (which then stops).
func (f *firstFit) place(c int) bool {
	w := f.dims.width
	demand := f.dims.demand[c*w : (c+1)*w]
	remaining := f.components[c].replicas
	for ; f.cursor[c] < f.rows.nodes; f.cursor[c]++ {
		i := f.cursor[c]
		if f.rows.room(i)[c] == 0 {
			continue // it does not match, or never had room
		}
		k := min(f.dims.copies(c, f.readFree(i)), remaining)
		if k == 0 {
			continue
		}
		free := f.freeOf(i)
		for d, dc := range demand {
			free[d] -= dc * k // k is within what is free: no overflow, no clamp
		}
		if remaining -= k; remaining == 0 {
			return true // the node may take more: the cursor stays
		}
	}
	return false
}
