package estimator

import (
	"context"
	"slices"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// setRows are what a component-set answer reads of each node, for one
// shape (its components and their dimensions): per node, the free
// resources per dimension, room (per component: what the free resources
// hold where the node matches it, 0 elsewhere: Karmada's per-node answer)
// and alone (room bounded by the exact GPU fit: Tessera's). Computing them
// is the one pass over every node a set answer needs; the greedy pass,
// the search and the first-fit simulation then read flat arrays. Rows kept
// with a memoised answer are immutable and brought up to date for the
// nodes that changed since (nodetable.go), as replica answers are.
type setRows struct {
	epoch             uint64
	nodes, components int
	free, room, alone []int64
}

// setRowsFor computes the rows on sim (a fresh simulation for memoised
// answers, so that they depend on the view alone), from prev where the
// table's history reaches back to it.
func (p *Plugin) setRowsFor(ctx context.Context, sim *simulation, components []*component, dims *setDims, prev *setRows) *setRows {
	t := sim.view.table
	n, nC := len(sim.view.nodes), len(components)
	if prev != nil && prev.nodes == n && prev.components == nC && len(prev.free) == n*dims.width {
		if prev.epoch == t.epoch {
			return prev
		}
		if changed, ok := t.changesSince(prev.epoch); ok && len(changed) <= n/incrementalShare {
			r := &setRows{epoch: t.epoch, nodes: n, components: nC,
				free: slices.Clone(prev.free), room: slices.Clone(prev.room), alone: slices.Clone(prev.alone)}
			for _, i := range changed {
				r.read(sim, int(i), components, dims)
			}
			return r
		}
	}
	r := &setRows{epoch: t.epoch, nodes: n, components: nC,
		free: make([]int64, n*dims.width), room: make([]int64, n*nC), alone: make([]int64, n*nC)}
	p.parallelizer.Until(ctx, n, func(i int) { r.read(sim, i, components, dims) })
	return r
}

// read computes node i's rows: its free resources once for all components
// (that reading, map lookups of scalar resources, is most of a per-node
// answer besides the GPU fit), and the GPU fit only where the resources
// leave room.
func (r *setRows) read(sim *simulation, i int, components []*component, dims *setDims) {
	nC, w := len(components), dims.width
	room, alone, f := r.room[i*nC:(i+1)*nC], r.alone[i*nC:(i+1)*nC], r.free[i*w:(i+1)*w]
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
