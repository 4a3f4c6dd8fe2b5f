package estimator

import (
	"context"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// setRows are what a component-set answer reads of each node, for one
// shape (its components and their dimensions): per node, the free
// resources per dimension, room (per component: what the free resources
// hold where the node matches it, 0 elsewhere: Karmada's per-node answer)
// and alone (room bounded by the exact GPU fit: Tessera's). Computing them
// is the one pass over every node a set answer needs; the greedy pass,
// the search and the first-fit simulation then read them.
//
// Rows kept with a memoised answer are immutable and brought up to date
// for the nodes that changed since (nodetable.go). They are held in
// chunks of rowChunkNodes nodes so that a change copies its chunk alone,
// not the whole table (about 11 MB at 50,000 nodes): the new rows share
// every other chunk with the old ones.
type setRows struct {
	epoch                    uint64
	nodes, components, width int
	chunks                   []*rowChunk
	// capacity is, per component, the sum of the alone counts.
	capacity []int64
	// first is the first node whose rows differ from those these were
	// brought up to date from (nodes where none does, 0 for rows computed
	// afresh), and firstChange the same per pass of the greedy order
	// (setgreedy.go): where first-fit and the greedy pass may resume.
	first       int
	firstChange [2]int
}

// rowChunkNodes is how many nodes share a chunk: small enough that a
// change copies a few kilobytes, large enough that the chunk list of a
// 50,000-node cluster stays short.
const rowChunkNodes = 256

// rowChunk holds the rows of nodes [j*rowChunkNodes, (j+1)*rowChunkNodes).
type rowChunk struct {
	free, room, alone []int64
	capacity          []int64 // per component, the chunk's sum of alone
}

func (r *setRows) free(i int) []int64 {
	c, k, w := r.chunks[i/rowChunkNodes], i%rowChunkNodes, r.width
	return c.free[k*w : (k+1)*w : (k+1)*w]
}

func (r *setRows) room(i int) []int64 {
	c, k, nC := r.chunks[i/rowChunkNodes], i%rowChunkNodes, r.components
	return c.room[k*nC : (k+1)*nC : (k+1)*nC]
}

func (r *setRows) alone(i int) []int64 {
	c, k, nC := r.chunks[i/rowChunkNodes], i%rowChunkNodes, r.components
	return c.alone[k*nC : (k+1)*nC : (k+1)*nC]
}

func (r *setRows) newChunk(j int) *rowChunk {
	size := min(rowChunkNodes, r.nodes-j*rowChunkNodes)
	return &rowChunk{free: make([]int64, size*r.width), room: make([]int64, size*r.components),
		alone: make([]int64, size*r.components), capacity: make([]int64, r.components)}
}

func (c *rowChunk) clone() *rowChunk {
	return &rowChunk{free: append([]int64(nil), c.free...), room: append([]int64(nil), c.room...),
		alone: append([]int64(nil), c.alone...), capacity: append([]int64(nil), c.capacity...)}
}

// sum recomputes the chunk's capacity.
func (c *rowChunk) sum(nC int) {
	clear(c.capacity)
	for k, a := range c.alone {
		c.capacity[k%nC] += a
	}
}

// total recomputes the rows' capacity from their chunks'.
func (r *setRows) total() {
	r.capacity = make([]int64, r.components)
	for _, c := range r.chunks {
		for k, a := range c.capacity {
			r.capacity[k] += a
		}
	}
}

// setRowsFor computes the rows on sim (a fresh simulation for memoised
// answers, so that they depend on the view alone), from prev where the
// table's history reaches back to it.
func (p *Plugin) setRowsFor(ctx context.Context, sim *simulation, components []*component, dims *setDims, prev *setRows) *setRows {
	t := sim.view.table
	n, nC := len(sim.view.nodes), len(components)
	if prev != nil && prev.nodes == n && prev.components == nC && prev.width == dims.width {
		if prev.epoch == t.epoch {
			return prev
		}
		if changed, ok := t.changesSince(prev.epoch); ok && len(changed) <= n/incrementalShare {
			return prev.update(sim, t.epoch, changed, components, dims)
		}
	}
	r := &setRows{epoch: t.epoch, nodes: n, components: nC, width: dims.width,
		chunks: make([]*rowChunk, (n+rowChunkNodes-1)/rowChunkNodes)}
	for j := range r.chunks {
		r.chunks[j] = r.newChunk(j)
	}
	p.parallelizer.Until(ctx, n, func(i int) { r.read(sim, i, components, dims) })
	for _, c := range r.chunks {
		c.sum(nC)
	}
	r.total()
	return r
}

// update is prev brought up to date at epoch for the changed nodes: their
// chunks are copied and read again, every other chunk is shared.
func (prev *setRows) update(sim *simulation, epoch uint64, changed []int32, components []*component, dims *setDims) *setRows {
	r := &setRows{epoch: epoch, nodes: prev.nodes, components: prev.components, width: prev.width,
		chunks: append([]*rowChunk(nil), prev.chunks...), first: prev.nodes, firstChange: [2]int{prev.nodes, prev.nodes}}
	copied := map[int]bool{}
	for _, i := range changed {
		j := int(i) / rowChunkNodes
		if !copied[j] {
			r.chunks[j] = prev.chunks[j].clone()
			copied[j] = true
		}
		r.first = min(r.first, int(i))
		was := greedyPass(prev.alone(int(i)), components)
		r.read(sim, int(i), components, dims)
		now := greedyPass(r.alone(int(i)), components)
		for _, pass := range [...]int{was, now} {
			if pass >= 0 {
				r.firstChange[pass] = min(r.firstChange[pass], int(i))
			}
		}
	}
	for j := range copied {
		r.chunks[j].sum(r.components)
	}
	r.total()
	return r
}

// read computes node i's rows: its free resources once for all components
// (that reading, map lookups of scalar resources, is most of a per-node
// answer besides the GPU fit), and the GPU fit only where the resources
// leave room.
func (r *setRows) read(sim *simulation, i int, components []*component, dims *setDims) {
	room, alone, f := r.room(i), r.alone(i), r.free(i)
	clear(room)
	clear(alone)
	clear(f)
	ni := sim.view.nodes[i]
	// matches' common case, decided once for all components.
	node := ni.Node()
	plain := node != nil && len(node.Spec.Taints) == 0 && !node.Spec.Unschedulable
	read := false
	var devices []vgpu.DeviceState
	for ci, c := range components {
		if !(plain && c.req.anyNode) && !c.req.matches(ni) {
			continue
		}
		if !read {
			dims.freeOn(sim, i, f)
			read = true
		}
		k := dims.copies(ci, f)
		room[ci] = k
		if k > 0 && c.req.AsksForGPUs {
			if devices == nil {
				devices = sim.devicesOf(i)
			}
			k = min(k, int64(vgpu.MaxReplicas(devices, c.req.GPU)))
		}
		alone[ci] = k
	}
}
