package estimator

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// setSearchBudget bounds the work of one component-set answer, counted in
// nodes tried in the search and GPU fit questions asked; a step costs well
// under a microsecond, a GPU question a few. The property test's population
// (small fragmented clusters) never reaches it; large clusters that the
// greedy pass cannot fill to the upper bound can (see maxSets).
const setSearchBudget = 200_000

// How the search works. k sets fit iff the k·r_c replicas of every
// component c can be spread over the nodes so that each node holds its
// share (a count vector) together. Sets need not share a node, and replicas
// of one component are interchangeable, so the search works on counts per
// node, never on individual replicas or sets. Because a node's feasible
// count vectors are downward closed, only vectors that are maximal within
// what is still needed are tried on each node (using less of a node is
// never better). Pruning: what is still needed of each component must fit
// in the remaining nodes' alone counts (the per-component exact bound), and
// states (node, still needed) that already failed are memoised.
type setSearch struct {
	ctx        context.Context
	components []*component
	replicas   []int64 // per component, per set
	dims       *setDims
	nodes      []*setNode
	order      []int   // components, most constrained first
	suffix     []int64 // [pos*C+c]: sum of alone counts of nodes from pos on
	choice     []int64 // [pos*C+c]: the counts chosen on each node
	budget     int
	steps      int
	gaveUp     bool
	undecided  bool // a GPU question was not decided (FitTogether's own budget)
	failed     map[string]struct{}
	key        []byte
	groups     []vgpu.Group
}

func newSetSearch(ctx context.Context, components []*component, dims *setDims, nodes []*setNode, capacity []int64, budget int) *setSearch {
	nC := len(components)
	s := &setSearch{
		ctx: ctx, components: components, dims: dims, nodes: nodes, budget: budget,
		replicas: make([]int64, nC), order: make([]int, nC),
		suffix: make([]int64, (len(nodes)+1)*nC), choice: make([]int64, len(nodes)*nC),
	}
	for c, comp := range components {
		s.replicas[c] = comp.replicas
		s.order[c] = c
	}
	// Most constrained first: the fewest sets by its own capacity, then
	// GPU components before others (they also compete for GPUs), then the
	// larger GPU demand.
	slices.SortStableFunc(s.order, func(a, b int) int {
		return cmp.Or(
			cmp.Compare(capacity[a]/s.replicas[a], capacity[b]/s.replicas[b]),
			cmp.Compare(gpuWeight(components[b]), gpuWeight(components[a])),
		)
	})
	for pos := len(nodes) - 1; pos >= 0; pos-- {
		for c := range nC {
			s.suffix[pos*nC+c] = s.suffix[(pos+1)*nC+c] + nodes[pos].alone[c]
		}
	}
	return s
}

// gpuWeight orders components by how much GPU one replica takes: none for
// components without GPUs.
func gpuWeight(c *component) int64 {
	if !c.req.AsksForGPUs {
		return -1
	}
	var w int64
	for _, ct := range c.req.GPU.Containers {
		w += int64(ct.GPUs) * max(ct.MemoryMiBPerGPU, 1)
	}
	return w
}

func (s *setSearch) step() bool {
	s.steps++
	if s.steps > s.budget || (s.steps&1023 == 0 && s.ctx.Err() != nil) {
		s.gaveUp = true
	}
	return !s.gaveUp
}

// greedy fills the nodes in order toward k sets, each node taking as much
// as it can of what is still needed, most constrained component first. It
// reports whether all k sets found room and, either way, how many complete
// sets its counts make up: a proven lower bound. s.choice holds its counts.
func (s *setSearch) greedy(k int64) (bool, int64) {
	nC := len(s.components)
	need := make([]int64, nC)
	for c := range need {
		need[c] = k * s.replicas[c]
	}
	clear(s.choice)
	left := nC
	for pos, n := range s.nodes {
		if left == 0 {
			break
		}
		left -= s.take(n, s.choice[pos*nC:(pos+1)*nC], need)
	}
	sets := k
	for c := range need {
		sets = min(sets, (k*s.replicas[c]-need[c])/s.replicas[c])
	}
	return left == 0, sets
}

// take fills v (zero) with what node n takes of what is still needed, most
// constrained component first, each as much as it can; it lowers need by
// that and returns how many components' needs it brought to 0.
func (s *setSearch) take(n *setNode, v, need []int64) int {
	done := 0
	for _, c := range s.order {
		hi := min(need[c], s.room(n, c, v))
		if hi == 0 {
			continue
		}
		// hi is within room: only the GPUs can say no.
		v[c] = hi
		if !s.gpusFit(n, v) {
			v[c] = s.largestFitting(n, v, c, hi-1)
		}
		if need[c] -= v[c]; need[c] == 0 {
			done++
		}
	}
	return done
}

// largestFitting is the largest x <= hi such that v with v[c] = x fits
// (fitting is monotone in x); it leaves v[c] = x.
func (s *setSearch) largestFitting(n *setNode, v []int64, c int, hi int64) int64 {
	lo := int64(0)
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		v[c] = mid
		if s.fits(n, v) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	v[c] = lo
	return lo
}

// feasible decides whether k sets fit; decided is false when the budget ran
// out first. On success s.choice holds the counts per node.
func (s *setSearch) feasible(k int64) (fits, decided bool) {
	if s.gaveUp {
		return false, false
	}
	need := make([]int64, len(s.components))
	for c := range need {
		need[c] = k * s.replicas[c]
	}
	clear(s.failed)
	clear(s.choice)
	fits = s.dfs(0, need)
	return fits, fits || !s.gaveUp
}

func (s *setSearch) dfs(pos int, need []int64) bool {
	if !slices.ContainsFunc(need, func(x int64) bool { return x > 0 }) {
		return true
	}
	nC := len(s.components)
	if pos == len(s.nodes) || !s.step() {
		return false
	}
	for c, x := range need {
		if x > s.suffix[pos*nC+c] {
			return false
		}
	}
	s.key = binary.AppendUvarint(s.key[:0], uint64(pos))
	for _, x := range need {
		s.key = binary.AppendUvarint(s.key, uint64(x))
	}
	key := string(s.key)
	if _, seen := s.failed[key]; seen {
		return false
	}
	n := s.nodes[pos]
	limit := make([]int64, nC)
	for c := range limit {
		limit[c] = min(need[c], n.alone[c])
	}
	v := s.choice[pos*nC : (pos+1)*nC]
	rest := make([]int64, nC)
	found := s.maximal(n, limit, v, 0, func() bool {
		for c := range rest {
			rest[c] = need[c] - v[c]
		}
		return s.dfs(pos+1, rest) || s.gaveUp
	})
	if found && !s.gaveUp {
		return true
	}
	clear(v)
	if !s.gaveUp {
		if s.failed == nil {
			s.failed = make(map[string]struct{})
		}
		s.failed[key] = struct{}{}
	}
	return false
}

// maximal calls visit with v set to every count vector within limit that
// fits on the node and cannot take one more replica of any component below
// its limit, most constrained component's count largest first; it stops
// (and returns true, leaving v as visited) when visit returns true.
// Components before s.order[j] are fixed in v.
func (s *setSearch) maximal(n *setNode, limit, v []int64, j int, visit func() bool) bool {
	if j == len(s.order) {
		for c := range v {
			if v[c] < limit[c] && s.room(n, c, v) > 0 {
				v[c]++
				more := s.fits(n, v)
				v[c]--
				if more {
					return false // dominated by a vector visited elsewhere
				}
			}
		}
		return visit()
	}
	c := s.order[j]
	hi := min(limit[c], s.room(n, c, v))
	if j == len(s.order)-1 {
		// Anything less for the last component is dominated.
		if hi > 0 {
			v[c] = hi
			if !s.fits(n, v) {
				s.largestFitting(n, v, c, hi-1)
			}
		}
		if s.maximal(n, limit, v, j+1, visit) {
			return true
		}
		v[c] = 0
		return false
	}
	for x := hi; x >= 0; x-- {
		if s.gaveUp {
			return true
		}
		v[c] = x
		if x > 0 && !s.fits(n, v) {
			continue
		}
		if s.maximal(n, limit, v, j+1, visit) {
			return true
		}
	}
	v[c] = 0
	return false
}

// maxSets is the largest number of sets, at most upper (the
// per-component exact bound), that fit, and whether that is proven exact.
// The greedy pass usually reaches upper, which settles it; otherwise
// lower (first-fit's answer, or the greedy's if larger) starts a search
// that tries upper first and then halves the gap. Past the budget the best
// proven count is the answer: never more than fits.
func (s *setSearch) maxSets(upper int64, firstFit func(limit int64) int64) (int64, bool) {
	ok, lower := s.greedy(upper)
	if ok {
		return upper, true
	}
	if firstFit != nil {
		lower = max(lower, firstFit(upper))
	}
	hi := upper
	for lower < hi {
		mid := hi
		if hi < upper {
			mid = lower + (hi-lower+1)/2
		}
		fits, decided := s.feasible(mid)
		switch {
		case fits:
			lower = mid
		case decided:
			hi = mid - 1
		default:
			return lower, false
		}
	}
	return lower, !s.undecided
}
