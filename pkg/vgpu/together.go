package vgpu

import (
	"slices"
)

// Group is a number of copies of one pod that are to share a node with the
// copies of other pods: the estimator asks it for the components of a
// multi-component workload (a head and its workers) on one node.
type Group struct {
	Req    PodRequest
	Copies int
}

// maxTogetherContainers bounds the containers FitTogether reasons about;
// past it the question is not decided (exact is false). No real node hosts
// that many GPU containers.
const maxTogetherContainers = 1 << 12

// FitTogether reports whether every copy of every group fits on the node's
// GPUs at once, by the same rules as Place and MaxReplicas: it asks the
// question MaxReplicas answers for one pod (do r copies fit?) for several
// different pods together, with the same exact search, so that a set of
// components is judged by the one fit algorithm.
//
// Copies of one group are interchangeable, and so are containers of
// different groups that have the same per-GPU demand: they become one type
// of the exact search. A group with an invalid request fits nowhere (as in
// MaxReplicas). exact is false, and fits with it, when the search ran out of
// its budget, when groups that ask for GPUs carry different selectors (a
// question this function does not model; the estimator's requests never
// carry one), or when the groups hold more than maxTogetherContainers GPU
// containers. It does not modify devices and keeps no state.
func FitTogether(devices []DeviceState, groups []Group) (fits, exact bool) {
	var combined PodRequest
	selectorSet := false
	for gi := range groups {
		g := &groups[gi]
		if g.Copies <= 0 {
			continue
		}
		if g.Req.Validate() != nil {
			return false, true
		}
		n := 0
		for _, c := range g.Req.Containers {
			if c.GPUs > 0 {
				n++
			}
		}
		if n == 0 {
			continue
		}
		if len(combined.Containers)+n*g.Copies > maxTogetherContainers {
			return false, false
		}
		if !selectorSet {
			combined.Selector, selectorSet = g.Req.Selector, true
		} else if !sameSelector(&combined.Selector, &g.Req.Selector) {
			return false, false
		}
		for range g.Copies {
			for _, c := range g.Req.Containers {
				if c.GPUs > 0 {
					combined.Containers = append(combined.Containers, c)
				}
			}
		}
	}
	if len(combined.Containers) == 0 {
		return true, true
	}
	d, _, uniform := shapeOf(&combined)
	if uniform {
		return uniformMax(devices, &combined, d, 1) == 1, true
	}
	gpus := usableGPUs(devices, &combined.Selector)
	// The greedy choice is cheap and usually enough; only when it paints
	// itself into a corner does the exact search decide, as in Place.
	byBinpack := compareForPolicy(Binpack)
	work := slices.Clone(gpus)
	slices.SortFunc(work, byBinpack)
	if _, ok := placeGreedy(work, &combined, byBinpack); ok {
		return true, true
	}
	slices.SortFunc(gpus, compareForPolicy(Spread)) // equal GPUs adjacent, as the search needs
	return newPacker(gpus, &combined, searchBudget).feasible(1, searchBudget)
}

func sameSelector(a, b *Selector) bool {
	return slices.Equal(a.IncludeModels, b.IncludeModels) && slices.Equal(a.ExcludeModels, b.ExcludeModels) &&
		slices.Equal(a.IncludeUUIDs, b.IncludeUUIDs) && slices.Equal(a.ExcludeUUIDs, b.ExcludeUUIDs)
}
