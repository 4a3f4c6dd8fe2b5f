package estimator

import (
	"encoding/binary"
	"slices"

	corev1 "k8s.io/api/core/v1"

	schedulerframework "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// The component-set search asks one question of a node: do these counts of
// the components' replicas (a count vector) fit on it together? The answer
// is downward closed (fewer replicas fit wherever more do), which the search
// relies on. Ordinary resources are linear: a dimension (cpu, memory,
// ephemeral storage, every scalar resource some component asks for,
// Tessera's node totals included, and the pod count) holds the counts iff
// the sum of their demands is within what is free, read exactly as
// resourceCopies reads it for one template. GPUs are decided by
// vgpu.FitTogether, the one fit algorithm, when two or more components that
// ask for GPUs share the node; a single GPU component is bounded exactly by
// its own count alone.

// setDims lists the resource dimensions some component asks for, so that a
// node's free resources and a component's demand are flat vectors.
type setDims struct {
	scalars []corev1.ResourceName
	// demand is [c*width+k]: what one replica of component c takes of
	// dimension k (dimension 0 is the pod count, 1-3 cpu, memory and
	// ephemeral storage, then the scalars).
	demand []int64
	width  int
}

const fixedDims = 4 // pods, milliCPU, memory, ephemeral storage

func newSetDims(components []*component) *setDims {
	d := &setDims{}
	for _, c := range components {
		for _, s := range c.req.Resources.Scalars {
			if !containsName(d.scalars, s.Name) {
				d.scalars = append(d.scalars, s.Name)
			}
		}
	}
	d.width = fixedDims + len(d.scalars)
	d.demand = make([]int64, len(components)*d.width)
	for ci, c := range components {
		row := d.demand[ci*d.width : (ci+1)*d.width]
		r := &c.req.Resources
		row[0], row[1], row[2], row[3] = 1, r.MilliCPU, r.Memory, r.EphemeralStorage
		for _, s := range r.Scalars {
			for k, name := range d.scalars {
				if name == s.Name {
					row[fixedDims+k] = s.Value
				}
			}
		}
	}
	return d
}

func containsName(names []corev1.ResourceName, n corev1.ResourceName) bool {
	for _, m := range names {
		if m == n {
			return true
		}
	}
	return false
}

// freeOn is what node i of the simulation has free in every dimension,
// never negative (as resourceCopies clamps it).
func (d *setDims) freeOn(s *simulation, i int, out []int64) {
	readFree(s.view.nodes[i], s.takenAt(i), d.scalars, out)
}

// readFree is what the node has free in every dimension (dimension 0 the
// pod count, 1-3 cpu, memory and ephemeral storage, then scalars) once t
// is placed too (nil for nothing), never negative: allocatable minus
// requested, as Karmada's noderesource plugin reads it.
func readFree(ni *schedulerframework.NodeInfo, t *taken, scalars []corev1.ResourceName, out []int64) {
	clear(out)
	alloc, req := ni.Allocatable, ni.Requested
	if alloc == nil {
		return
	}
	if t == nil {
		t = &taken{}
	}
	var reqCPU, reqMem, reqEph, reqPods int64
	if req != nil {
		reqCPU, reqMem, reqEph, reqPods = req.MilliCPU, req.Memory, req.EphemeralStorage, req.AllowedPodNumber
	}
	out[0] = max(alloc.AllowedPodNumber-reqPods, 0) - int64(len(ni.Pods)) - t.pods
	out[1] = alloc.MilliCPU - reqCPU - t.milliCPU
	out[2] = alloc.Memory - reqMem - t.memory
	out[3] = alloc.EphemeralStorage - reqEph - t.ephemeralStorage
	for k, name := range scalars {
		var used int64
		if req != nil {
			used = req.ScalarResources[name]
		}
		out[fixedDims+k] = alloc.ScalarResources[name] - used - t.scalars[name]
	}
	for k := range out {
		out[k] = max(out[k], 0)
	}
}

// setNode is one node that can take a replica of at least one component.
type setNode struct {
	pos int // index into the view's nodes
	// alone is, per component, how many replicas fit with nothing else of
	// the set: the per-node exact answer for that template (0 where it does
	// not match the node).
	alone   []int64
	free    []int64 // per dimension
	devices []vgpu.DeviceState
	fitted  map[string]bool // answers to fits, by count vector
}

// copies is how many replicas of component c the free resources hold: the
// same answer as resourceCopies, read from the node's free vector.
func (d *setDims) copies(c int, free []int64) int64 {
	n := free[0] // the pod count: every replica takes one
	for k, dc := range d.demand[c*d.width : (c+1)*d.width] {
		if dc > 0 {
			n = min(n, free[k]/dc)
		}
	}
	return n
}

// setNodes returns the nodes that can take a replica of some component
// (those where GPU components cannot meet first, otherwise in the view's
// order: greedyPass), from the per-node rows (setrows.go), with the sum of
// the alone counts per component.
func setNodes(sim *simulation, components []*component, rows *setRows) ([]*setNode, []int64) {
	n := len(sim.view.nodes)
	count := 0
	for i := range n {
		if greedyPass(rows.alone(i), components) >= 0 {
			count++
		}
	}
	// One slab for the nodes: a large cluster would otherwise cost an
	// allocation per node. Nodes where at most one GPU component can go
	// come first (a stable partition): filling them needs no question about
	// GPUs shared between components, so the greedy pass (and the search)
	// settle most of a large cluster cheaply.
	slab := make([]setNode, 0, count)
	nodes := make([]*setNode, 0, count)
	for pass := range 2 {
		for i := range n {
			alone := rows.alone(i)
			if greedyPass(alone, components) != pass {
				continue
			}
			slab = append(slab, setNode{pos: i, alone: alone, free: rows.free(i), devices: sim.devicesOf(i)})
			nodes = append(nodes, &slab[len(slab)-1])
		}
	}
	return nodes, slices.Clone(rows.capacity)
}

// room is how many more replicas of component c fit in the node's
// ordinary resources next to the counts v, at most its alone count.
func (s *setSearch) room(n *setNode, c int, v []int64) int64 {
	w := s.dims.width
	room := n.alone[c] - v[c]
	for k := range w {
		dc := s.dims.demand[c*w+k]
		if dc <= 0 {
			continue
		}
		left := n.free[k]
		for o, x := range v {
			left -= x * s.dims.demand[o*w+k]
		}
		room = min(room, max(left, 0)/dc)
	}
	return max(room, 0)
}

// fits reports whether the counts v (each within the node's alone counts)
// fit on the node together. An undecided GPU question counts as not
// fitting and makes the whole answer not exact.
func (s *setSearch) fits(n *setNode, v []int64) bool {
	w := s.dims.width
	for k := range w {
		var sum int64
		for c, x := range v {
			sum += x * s.dims.demand[c*w+k]
		}
		if sum > n.free[k] {
			return false
		}
	}
	return s.gpusFit(n, v)
}

// gpusFit is fits without the ordinary resources, for counts already known
// to fit in them (within room).
func (s *setSearch) gpusFit(n *setNode, v []int64) bool {
	gpuComponents := 0
	for c, x := range v {
		if x > 0 && s.components[c].req.AsksForGPUs {
			gpuComponents++
		}
	}
	if gpuComponents < 2 {
		return true // one GPU component is bounded by its alone count
	}
	s.key = s.key[:0]
	for _, x := range v {
		s.key = binary.AppendUvarint(s.key, uint64(x))
	}
	if ok, seen := n.fitted[string(s.key)]; seen {
		return ok
	}
	s.steps++
	s.groups = s.groups[:0]
	for c, x := range v {
		if x > 0 && s.components[c].req.AsksForGPUs {
			s.groups = append(s.groups, vgpu.Group{Req: s.components[c].req.GPU, Copies: int(x)})
		}
	}
	ok, exact := vgpu.FitTogether(n.devices, s.groups)
	if !exact {
		s.undecided = true
	}
	if n.fitted == nil {
		n.fitted = make(map[string]bool)
	}
	n.fitted[string(s.key)] = ok
	return ok
}
