package vgpu

import "slices"

// MaxReplicas is the exact maximum number of copies of the pod that fit on
// the node together, by the same rules as Place (so Place succeeds iff
// MaxReplicas >= 1), not a node total divided by a request. A pod with no
// GPU container gets Unlimited; an invalid request (see Validate) gets 0.
// It is meant to be called for every node of a cluster: it does not modify
// devices and keeps no state.
//
// When all GPU containers share one per-GPU demand (the common case), the
// answer is closed-form: GPU g can host k_g shares (the least of its free
// slots, free memory / share and free cores / share), and R copies fit iff
// the containers as rows of a 0/1 matrix with column sums at most k_g exist,
// i.e. by Gale–Ryser iff for every t the t largest rows need at most
// sum_g min(k_g, t). The largest R comes from a binary search; this path
// does not allocate for nodes of up to 16 GPUs and pods of up to 8 GPU
// containers.
//
// Mixed demands go to an exact branch-and-bound search (search.go) over
// R, starting at the upper bound of the per-type and per-dimension
// relaxations, with copies placed greedily as the lower bound. If that
// search exceeds searchBudget, MaxReplicas answers the largest count it
// proved to fit: a lower bound, never an overestimate.
func MaxReplicas(devices []DeviceState, req PodRequest) int {
	n, _ := maxReplicas(devices, &req, searchBudget)
	return n
}

// maxReplicas also reports whether the answer is proven exact (false only
// when the search budget ran out).
func maxReplicas(devices []DeviceState, req *PodRequest, budget int) (n int, exact bool) {
	if req.Validate() != nil {
		return 0, true
	}
	d, containers, uniform := shapeOf(req)
	switch {
	case containers == 0:
		return Unlimited, true
	case uniform:
		return int(uniformMax(devices, req, d, 0)), true
	}
	return mixedMax(devices, req, budget)
}

// shapeOf counts the GPU containers and reports whether they all share one
// per-GPU demand d.
func shapeOf(req *PodRequest) (d unitDemand, containers int, uniform bool) {
	uniform = true
	for _, c := range req.Containers {
		if c.GPUs <= 0 {
			continue
		}
		cd := demandOf(c)
		if containers == 0 {
			d = cd
		} else if cd != d {
			uniform = false
		}
		containers++
	}
	return d, containers, uniform
}

// uniformMax answers MaxReplicas for a pod whose GPU containers all have
// demand d. With onlyCheck > 0 it instead answers onlyCheck if that many
// copies fit, else 0 (the cheap "does one copy fit" of NodeScore).
func uniformMax(devices []DeviceState, req *PodRequest, d unitDemand, onlyCheck int64) int64 {
	var kbuf [16]int64
	ks := kbuf[:0]
	for i := range devices {
		dev := &devices[i]
		if !usable(dev, &req.Selector) {
			continue
		}
		if k := d.units(dev.Free(), dev.MemoryMiB); k > 0 {
			ks = append(ks, k)
		}
	}
	var sbuf [8]int
	sizes := sbuf[:0]
	for _, c := range req.Containers {
		if c.GPUs > 0 {
			sizes = insertDescending(sizes, c.GPUs)
		}
	}
	var lbuf [8]level
	levels := appendLevels(lbuf[:0], sizes, 1)
	if onlyCheck > 0 {
		if grFits(ks, levels, onlyCheck) {
			return onlyCheck
		}
		return 0
	}
	return grMax(ks, levels)
}

// insertDescending inserts v into the descending slice s.
func insertDescending(s []int, v int) []int {
	s = append(s, v)
	i := len(s) - 1
	for ; i > 0 && s[i-1] < v; i-- {
		s[i] = s[i-1]
	}
	s[i] = v
	return s
}

// grMax is the largest r such that r copies of the rows described by the
// one-copy levels fit on columns of capacities ks (Gale–Ryser, flow form),
// at most Unlimited. Fitting is monotone in r, so binary search is exact.
func grMax(ks []int64, levels []level) int64 {
	if len(levels) == 0 { // no rows: nothing limits the copies
		return Unlimited
	}
	var total int64
	for _, k := range ks {
		total += k
	}
	hi := min(total/levels[len(levels)-1].units, Unlimited)
	if hi == 0 || grFits(ks, levels, hi) {
		return hi
	}
	lo := int64(0)
	hi--
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if grFits(ks, levels, mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// grFits checks the Gale–Ryser condition for r copies at every level: the
// left side is linear between levels and the right side concave, so the
// condition holds everywhere iff it holds there.
func grFits(ks []int64, levels []level, r int64) bool {
	for _, lv := range levels {
		t, need := lv.rows*r, lv.units*r
		var have int64
		for _, k := range ks {
			have += min(k, t)
		}
		if have < need {
			return false
		}
	}
	return true
}

// mixedMax answers MaxReplicas for pods whose containers differ in per-GPU
// demand. The relaxations give an upper bound, which the exact search tries
// first (it usually fits); otherwise copies placed greedily one after the
// other give a lower bound, and a binary search between the two closes the
// gap. A question the search gives up on ends the search with the lower
// bound, reported as not exact.
func mixedMax(devices []DeviceState, req *PodRequest, budget int) (int, bool) {
	gpus := usableGPUs(devices, &req.Selector)
	slices.SortFunc(gpus, compareForPolicy(Spread)) // roomiest first; equal GPUs adjacent
	p := newPacker(gpus, req, budget)
	hi := mixedUpperBound(p)
	fits, decided := p.feasible(hi, budget/2)
	if fits {
		return int(hi), true
	}
	if decided {
		hi--
	}
	lo := greedyCopies(gpus, req, min(hi, maxGreedyCopies))
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		fits, decided := p.feasible(mid, budget)
		switch {
		case fits:
			lo = mid
		case decided:
			hi = mid - 1
		default:
			return int(lo), false
		}
	}
	return int(lo), true
}

// maxGreedyCopies bounds the work of greedyCopies on absurd inventories
// (millions of slots); real nodes hold far fewer copies of any GPU pod.
const maxGreedyCopies = 1 << 12

// greedyCopies counts the copies (at most limit) that Place's greedy choice
// fits one after the other: a proven lower bound.
func greedyCopies(gpus []packGPU, req *PodRequest, limit int64) int64 {
	work := slices.Clone(gpus)
	byBinpack := compareForPolicy(Binpack)
	var n int64
	for n < limit {
		if _, ok := placeGreedy(work, req, byBinpack); !ok {
			break
		}
		n++
	}
	return n
}

// mixedUpperBound relaxes the problem: each type of container alone (exact,
// by Gale–Ryser), all containers on slots alone (exact for that
// dimension), and the node's total free memory and cores.
func mixedUpperBound(p *packer) int64 {
	ks := make([]int64, 0, len(p.gpus))
	var free Usage
	for _, g := range p.gpus {
		ks = append(ks, int64(g.free.Slots))
		free = free.Add(g.free)
	}
	var sizes []int
	var perCopy Usage
	for _, t := range p.types {
		for _, s := range t.sizes {
			sizes = append(sizes, s)
			perCopy.Cores += s * t.d.cores
			if t.d.fixedMem() {
				perCopy.MemoryMiB += int64(s) * t.d.mem
			}
		}
	}
	slices.SortFunc(sizes, func(a, b int) int { return b - a })
	levels := appendLevels(make([]level, 0, len(sizes)), sizes, 1)
	ub := grMax(ks, levels)
	if perCopy.MemoryMiB > 0 {
		ub = min(ub, free.MemoryMiB/perCopy.MemoryMiB)
	}
	if perCopy.Cores > 0 {
		ub = min(ub, int64(free.Cores/perCopy.Cores))
	}
	for _, t := range p.types {
		ks = ks[:0]
		for _, g := range p.gpus {
			ks = append(ks, t.d.units(g.free, g.memCap))
		}
		ub = min(ub, grMax(ks, appendLevels(levels[:0], t.sizes, 1)))
	}
	return ub
}

// fitsOnce reports whether one copy of the pod fits; it agrees with Place.
func fitsOnce(devices []DeviceState, req *PodRequest) bool {
	if req.Validate() != nil {
		return false
	}
	d, containers, uniform := shapeOf(req)
	switch {
	case containers == 0:
		return true
	case uniform:
		return uniformMax(devices, req, d, 1) == 1
	}
	gpus := usableGPUs(devices, &req.Selector)
	byPolicy := compareForPolicy(req.GPUPolicy)
	slices.SortFunc(gpus, byPolicy)
	if _, ok := placeGreedy(slices.Clone(gpus), req, byPolicy); ok {
		return true
	}
	fits, _ := newPacker(gpus, req, searchBudget).feasible(1, searchBudget)
	return fits
}
