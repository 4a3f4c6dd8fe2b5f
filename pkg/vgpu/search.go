package vgpu

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// searchBudget bounds the work of one exact search (one Place fallback, or
// one whole MaxReplicas answer for a pod with mixed demands), counted in
// per-GPU choices tried; a step costs tens of nanoseconds. On 8- and 16-GPU
// nodes with 2-5 mixed containers the median answer takes about 30 steps
// and the worst of 3000 about 15,000; the property, realistic-node and fuzz
// tests assert that their populations never reach the budget. Past it,
// Place reports that it gave up and MaxReplicas answers the best count it
// proved, so the budget can make an answer smaller, never wrong.
const searchBudget = 200_000

// The exact search works on counts instead of assignments. Containers with
// the same unitDemand form a "type"; choosing, for every GPU g and type t,
// an upper bound x[g][t] on how many containers of type t g hosts (within
// g's capacity for all types together) leaves one question per type: can its
// containers (rows of a 0/1 matrix, each needing its GPU count of distinct
// GPUs) be spread over GPUs that take at most x[g][t] each? By Gale–Ryser
// (flow form) they can iff for every k the k largest rows need no more than
// sum_g min(x[g][t], k); both sides are piecewise linear and the right one
// concave, so checking k at the row-size breakpoints (levels) is enough.
//
// This formulation has no symmetry between containers, and GPUs with equal
// free capacity are interchangeable, so the search fixes an order among
// them. Only Pareto-maximal x vectors per GPU need trying, because x is an
// upper bound. Pruning: at every depth each type's condition must still be
// reachable with what the remaining GPUs could host of that type alone, and
// the shares still missing must fit, dimension by dimension, in the most
// slots, memory and cores any vector of each remaining GPU uses (the
// per-dimension relaxation, aware of what shares leave unusable on a GPU).
// States the search has already failed from are memoised.

// packGPU is one usable GPU as the fit algorithm sees it.
type packGPU struct {
	pos    int // index into the caller's devices
	index  int // the GPU's index, for deterministic ties
	free   Usage
	memCap int64
	// sameAsPrev: the previous GPU in the search order has the same free
	// capacity and memory size, so the two are interchangeable.
	sameAsPrev bool
}

// packType is the containers of one copy of the pod that share a unitDemand.
type packType struct {
	d          unitDemand
	sizes      []int // their GPU counts, largest first
	containers []int // their indices in the PodRequest, in pod order
}

// level is one breakpoint of a type's Gale–Ryser condition: its `rows`
// largest containers together need `units` GPU shares.
type level struct{ rows, units int64 }

// appendLevels appends the levels of R copies of containers of the given
// GPU counts (sorted largest first).
func appendLevels(dst []level, sizes []int, r int64) []level {
	var rows, units int64
	for i, s := range sizes {
		rows += r
		units += r * int64(s)
		if i+1 == len(sizes) || sizes[i+1] != s {
			dst = append(dst, level{rows: rows, units: units})
		}
	}
	return dst
}

type packer struct {
	gpus   []packGPU
	types  []packType
	budget int  // steps for the packer's whole life
	steps  int  // steps taken so far
	limit  int  // steps at which the current question is given up
	gaveUp bool // the current question ran into limit

	// Working state for one feasibility question, rebuilt by reset into
	// flat buffers that later questions reuse (MaxReplicas asks several).
	levels  []level // every type's levels; type t's are levels[levelOf[t]:levelOf[t+1]]
	levelOf []int
	caps    []int64 // [g*T+t]: what GPU g could host of type t alone
	vectors []int64 // Pareto-maximal x vectors, T entries each
	front   []span  // [g]: GPU g's vectors (shared by equal GPUs)
	suffix  []int64 // [g*L+l]: sum over GPUs from g on of min(cap, levels[l].rows)
	acc     []int64 // [l]: sum over chosen GPUs of min(x, levels[l].rows)
	remMax  []Usage // [g]: sum over GPUs from g on of the most slots, memory (of non-whole types) and cores any of their vectors uses
	choice  []int   // [g]: index of the chosen vector
	x       []int64 // scratch vector for frontierOf
	// failed memoises the states (GPU, what the chosen GPUs provide up to
	// each level's need, previous choice where it constrains) from which
	// the search already failed: different choices often lead to the same
	// state, and the future depends on nothing else.
	failed map[string]struct{}
	key    []byte
}

// span is a range [from, to) of vector numbers.
type span struct{ from, to int }

// newPacker prepares the search over gpus (in the order to try them; equal
// GPUs must be adjacent) for the GPU containers of req.
func newPacker(gpus []packGPU, req *PodRequest, budget int) *packer {
	p := &packer{gpus: gpus, budget: budget}
	for i := range p.gpus {
		p.gpus[i].sameAsPrev = i > 0 && p.gpus[i].free == p.gpus[i-1].free && p.gpus[i].memCap == p.gpus[i-1].memCap
	}
	// Group the containers by demand; one buffer holds every type's sizes
	// and container indices (a type's entries are contiguous).
	n := 0
	for _, c := range req.Containers {
		if c.GPUs > 0 {
			n++
		}
	}
	p.types = make([]packType, 0, n)
	buf := make([]int, 0, 2*n)
	for ci, c := range req.Containers {
		if c.GPUs <= 0 || slices.ContainsFunc(p.types, func(t packType) bool { return t.d == demandOf(c) }) {
			continue
		}
		d := demandOf(c)
		from := len(buf)
		for cj := ci; cj < len(req.Containers); cj++ {
			if o := req.Containers[cj]; o.GPUs > 0 && demandOf(o) == d {
				buf = append(buf, cj)
			}
		}
		containers := buf[from:len(buf):len(buf)]
		for _, cj := range containers {
			buf = append(buf, req.Containers[cj].GPUs)
		}
		sizes := buf[from+len(containers) : len(buf) : len(buf)]
		slices.SortFunc(sizes, func(a, b int) int { return b - a })
		p.types = append(p.types, packType{d: d, sizes: sizes, containers: containers})
	}
	return p
}

func (p *packer) step() bool {
	p.steps++
	if p.steps > p.limit {
		p.gaveUp = true
	}
	return !p.gaveUp
}

// feasible reports whether r copies of the pod fit together, spending at
// most allowance steps of what is left of the budget. decided is false when
// it gave up first (then fits is false too).
func (p *packer) feasible(r int64, allowance int) (fits, decided bool) {
	if r <= 0 {
		return true, true
	}
	p.limit = min(p.budget, p.steps+allowance)
	p.gaveUp = p.steps >= p.limit
	if p.gaveUp {
		return false, false
	}
	p.reset(r)
	fits = !p.gaveUp && p.dfs(0)
	return fits, fits || !p.gaveUp
}

// resized returns s with length n and zero contents, reusing its array.
func resized[E any](s []E, n int) []E {
	if cap(s) < n {
		return make([]E, n)
	}
	s = s[:n]
	clear(s)
	return s
}

func (p *packer) reset(r int64) {
	nG, nT := len(p.gpus), len(p.types)
	p.levels = p.levels[:0]
	p.levelOf = resized(p.levelOf, nT+1)
	for t, typ := range p.types {
		p.levelOf[t] = len(p.levels)
		p.levels = appendLevels(p.levels, typ.sizes, r)
	}
	nL := len(p.levels)
	p.levelOf[nT] = nL
	p.caps = resized(p.caps, nG*nT)
	p.front = resized(p.front, nG)
	p.vectors = p.vectors[:0]
	p.x = resized(p.x, nT)
	for g := range p.gpus {
		caps := p.caps[g*nT : (g+1)*nT]
		for t, typ := range p.types {
			caps[t] = min(typ.d.units(p.gpus[g].free, p.gpus[g].memCap), r*int64(len(typ.sizes)))
		}
		if p.gpus[g].sameAsPrev {
			p.front[g] = p.front[g-1]
			continue
		}
		from := len(p.vectors) / nT
		p.frontierOf(&p.gpus[g], caps, 0, p.gpus[g].free)
		p.front[g] = span{from, len(p.vectors) / nT}
	}
	p.suffix = resized(p.suffix, (nG+1)*nL)
	p.remMax = resized(p.remMax, nG+1)
	for g := nG - 1; g >= 0; g-- {
		for t := range p.types {
			for l := p.levelOf[t]; l < p.levelOf[t+1]; l++ {
				p.suffix[g*nL+l] = p.suffix[(g+1)*nL+l] + min(p.caps[g*nT+t], p.levels[l].rows)
			}
		}
		p.remMax[g] = p.remMax[g+1].Add(p.mostUsed(p.front[g]))
	}
	p.acc = resized(p.acc, nL)
	p.choice = resized(p.choice, nG)
	clear(p.failed)
}

// mostUsed is, per dimension, the most that any of the vectors uses: a
// bound that, unlike the free capacity, knows that shares rarely fill a GPU
// exactly. Memory counts only types with a fixed share, as bound does.
func (p *packer) mostUsed(vectors span) Usage {
	var most Usage
	for i := vectors.from; i < vectors.to; i++ {
		var u Usage
		for t, n := range p.vector(i) {
			d := p.types[t].d
			u.Slots += int(n)
			u.Cores += int(n) * d.cores
			if d.fixedMem() {
				u.MemoryMiB += n * d.mem
			}
		}
		most = Usage{Slots: max(most.Slots, u.Slots), MemoryMiB: max(most.MemoryMiB, u.MemoryMiB), Cores: max(most.Cores, u.Cores)}
	}
	return most
}

// frontierOf appends to p.vectors the Pareto-maximal vectors x (x[t] <=
// caps[t], all of them together within the GPU's free capacity) whose
// first t entries are p.x[:t], lexicographically largest first, so that the
// search tries to load earlier types first. left is what p.x[:t] leaves.
func (p *packer) frontierOf(g *packGPU, caps []int64, t int, left Usage) {
	d := p.types[t].d
	hi := min(caps[t], d.units(left, g.memCap))
	if t == len(p.types)-1 {
		// Anything less for the last type is dominated by hi.
		if !p.step() {
			return
		}
		p.x[t] = hi
		if p.maximal(g, caps, left.sub(d.usage(g.memCap).scaled(hi))) {
			p.vectors = append(p.vectors, p.x...)
		}
		return
	}
	for n := hi; n >= 0 && !p.gaveUp; n-- {
		p.x[t] = n
		p.frontierOf(g, caps, t+1, left.sub(d.usage(g.memCap).scaled(n)))
	}
}

// maximal reports whether no type can take one more unit beyond p.x in
// what is left.
func (p *packer) maximal(g *packGPU, caps []int64, left Usage) bool {
	for t, typ := range p.types {
		if p.x[t] < caps[t] && typ.d.fits(left, g.memCap) {
			return false
		}
	}
	return true
}

// vector is vector number i.
func (p *packer) vector(i int) []int64 {
	n := len(p.types)
	return p.vectors[i*n : (i+1)*n]
}

func (p *packer) dfs(g int) bool {
	if !p.bound(g) {
		return false
	}
	if g == len(p.gpus) {
		return true
	}
	start := p.front[g].from
	if p.gpus[g].sameAsPrev {
		start = p.choice[g-1] // equal GPUs take non-increasing vectors
	}
	if _, seen := p.failed[string(p.stateKey(g, start))]; seen {
		return false
	}
	for i := start; i < p.front[g].to; i++ {
		if !p.step() {
			return false
		}
		p.choice[g] = i
		p.add(p.vector(i), 1)
		if p.dfs(g + 1) {
			return true
		}
		p.add(p.vector(i), -1)
		if p.gaveUp {
			return false
		}
	}
	// Every choice was undone, so the state is again the one on entry.
	if p.failed == nil {
		p.failed = make(map[string]struct{})
	}
	p.failed[string(p.stateKey(g, start))] = struct{}{}
	return false
}

// stateKey encodes what the rest of the search depends on: the GPU, where
// its choices start, and for each level what the chosen GPUs provide,
// capped at the level's need (more is no different).
func (p *packer) stateKey(g, start int) []byte {
	p.key = binary.AppendUvarint(p.key[:0], uint64(g))
	p.key = binary.AppendUvarint(p.key, uint64(start))
	for l, lv := range p.levels {
		p.key = binary.AppendUvarint(p.key, uint64(min(p.acc[l], lv.units)))
	}
	return p.key
}

func (p *packer) add(x []int64, sign int64) {
	for t := range p.types {
		for l := p.levelOf[t]; l < p.levelOf[t+1]; l++ {
			p.acc[l] += sign * min(x[t], p.levels[l].rows)
		}
	}
}

// bound reports whether the GPUs from g on could still complete the choice.
func (p *packer) bound(g int) bool {
	nL := len(p.levels)
	suffix := p.suffix[g*nL : (g+1)*nL]
	var missing Usage
	for t, typ := range p.types {
		for l := p.levelOf[t]; l < p.levelOf[t+1]; l++ {
			if p.acc[l]+suffix[l] < p.levels[l].units {
				return false
			}
		}
		last := p.levelOf[t+1] - 1
		if n := p.levels[last].units - p.acc[last]; n > 0 {
			missing.Slots += int(n)
			missing.Cores += int(n) * typ.d.cores
			if typ.d.fixedMem() { // percentage shares differ per GPU; leave them out
				missing.MemoryMiB += n * typ.d.mem
			}
		}
	}
	return p.remMax[g].covers(missing)
}

// assign turns the found counts into GPUs per container (positions into
// the caller's devices, indexed like req.Containers). Any container order
// works when each takes the GPUs with the most room left for its type
// (the constructive proof of Gale–Ryser); ties go to the earlier GPU in the
// search order, which is the policy's preference.
func (p *packer) assign(req *PodRequest) ([][]int, error) {
	chosen := make([][]int, len(req.Containers))
	left := make([]int64, len(p.gpus))
	for t, typ := range p.types {
		for g := range p.gpus {
			left[g] = p.vector(p.choice[g])[t]
		}
		for _, ci := range typ.containers {
			for range req.Containers[ci].GPUs {
				best := -1
				for g := range p.gpus {
					if left[g] > 0 && !slices.Contains(chosen[ci], p.gpus[g].pos) && (best < 0 || left[g] > left[best]) {
						best = g
					}
				}
				if best < 0 {
					return nil, fmt.Errorf("internal error: the counts found for container %q cannot be realised", req.Containers[ci].Name)
				}
				left[best]--
				chosen[ci] = append(chosen[ci], p.gpus[best].pos)
			}
		}
	}
	return chosen, nil
}
