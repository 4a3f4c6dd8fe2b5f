package estimator

import (
	"math"
	"slices"
)

// The greedy pass of a component-set answer (setSearch.greedy) walks the
// nodes in order, each taking as much as it can of what is still needed.
// Under churn a memoised answer is asked again after a few nodes changed,
// and most of the walk is the same as last time: rowGreedy walks the rows
// directly (no node list to build) and resumes from the last checkpoint
// before the first changed node.
//
// Why a checkpoint taken for one target k serves another k': while no
// component's need has reached its end (every need above 0 after a node),
// each node takes what it would take with unbounded needs: a need above
// what the node takes bounds nothing (the node's choice is the largest
// count within its room that fits, and that is below the need). So a
// checkpoint where every need is still above 0, for k and for k', is the
// same walk, with needs differing by (k'-k)·replicas.

// greedyMarkSteps is how many steps of the walk lie between checkpoints.
const greedyMarkSteps = 512

// greedyMarks are the needs before every greedyMarkSteps-th step of a
// greedy walk toward k sets; a step is a pass (0: nodes where at most one
// GPU component can go, 1: the others, as setNodes orders them) times the
// node count plus the node's position.
type greedyMarks struct {
	k     int64
	nodes int
	need  [][]int64
}

// greedyPass is the pass of the greedy order a node with these alone
// counts belongs to, or -1 where no component can go.
func greedyPass(alone []int64, components []*component) int {
	gpus, any := 0, false
	for c, a := range alone {
		if a > 0 {
			any = true
			if components[c].req.AsksForGPUs {
				gpus++
			}
		}
	}
	switch {
	case !any:
		return -1
	case gpus > 1:
		return 1
	}
	return 0
}

// rowGreedy is s.greedy(k) over the rows in setNodes' order, from prev's
// last usable checkpoint: whether all k sets found room, and the
// checkpoints of this walk.
func (s *setSearch) rowGreedy(sim *simulation, rows *setRows, k int64, prev *greedyMarks) (bool, *greedyMarks) {
	nC, n := len(s.components), rows.nodes
	marks := &greedyMarks{k: k, nodes: n}
	need := make([]int64, nC)
	start := s.resumeGreedy(rows, k, prev, marks, need)
	left := 0
	for _, x := range need {
		if x > 0 {
			left++
		}
	}
	v := make([]int64, nC)
	node := &setNode{}
	for t := start; t < 2*n && left > 0; t++ {
		if t%greedyMarkSteps == 0 {
			marks.need = append(marks.need, slices.Clone(need))
		}
		pass, i := t/n, t%n
		alone := rows.alone(i)
		if greedyPass(alone, s.components) != pass {
			continue
		}
		*node = setNode{pos: i, alone: alone, free: rows.free(i)}
		if pass == 1 {
			// Only where two GPU components meet are GPUs asked about:
			// reading every node's GPU state costs a cache miss per node.
			node.devices = sim.devicesOf(i)
		}
		clear(v)
		left -= s.take(node, v, need)
	}
	return left == 0, marks
}

// resumeGreedy fills need with the walk's state at its starting step,
// copying prev's checkpoints up to it into marks, and returns that step: 0
// (need k·replicas) where no checkpoint of prev comes before the first
// change and serves k.
func (s *setSearch) resumeGreedy(rows *setRows, k int64, prev *greedyMarks, marks *greedyMarks, need []int64) int {
	for c := range need {
		need[c] = k * s.replicas[c]
	}
	if prev == nil || prev.nodes != rows.nodes {
		return 0
	}
	limit := rows.firstChange[0]
	if limit == rows.nodes {
		limit += rows.firstChange[1]
	}
	for m := min(len(prev.need)-1, limit/greedyMarkSteps); m > 0; m-- {
		if !s.serves(prev.need[m], prev.k, k) {
			continue
		}
		for _, old := range prev.need[:m] {
			marks.need = append(marks.need, s.shifted(old, prev.k, k))
		}
		copy(need, s.shifted(prev.need[m], prev.k, k))
		return m * greedyMarkSteps
	}
	return 0
}

// serves reports whether a checkpoint with these needs toward k sets is
// also the walk toward k2 sets.
func (s *setSearch) serves(need []int64, k, k2 int64) bool {
	if k == k2 {
		return true
	}
	for c, x := range need {
		if x <= 0 || x+(k2-k)*s.replicas[c] <= 0 {
			return false
		}
	}
	return true
}

func (s *setSearch) shifted(need []int64, k, k2 int64) []int64 {
	out := slices.Clone(need)
	for c := range out {
		out[c] += (k2 - k) * s.replicas[c]
	}
	return out
}

// upperBound is the per-component exact bound on the sets: each
// component's alone counts summed, over its replicas per set.
func upperBound(components []*component, capacity []int64) int64 {
	upper := int64(math.MaxInt32)
	for c, comp := range components {
		upper = min(upper, capacity[c]/comp.replicas)
	}
	return upper
}
