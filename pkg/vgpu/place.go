package vgpu

import (
	"cmp"
	"fmt"
	"slices"
)

// Place chooses GPUs on one node for every GPU container of req.
//
// A container of N vGPUs gets N distinct healthy GPUs that its selector
// allows, each with a free slot, its memory share and its core share.
// Different containers of the pod may share a GPU, each taking its own
// share. Containers that ask for no vGPU get no entry in the Placement.
//
// Place first tries the policy's greedy choice: containers hardest first
// (most GPUs, whole memory, most memory, most cores), each on the GPUs the
// policy likes best (binpack: least free memory, then cores, then slots;
// spread: the most; ties by GPU index; any other policy is binpack). When
// the greedy choice paints itself into a corner, an exact search (see
// search.go) decides; so Place fails only when no placement exists (or, in
// pathological cases, when the search exceeds its budget, which Unfit then
// says), and returns an *Unfit that says why. Invalid requests and
// inventories get a plain error. It never modifies its arguments. A
// container's GPUs are listed by GPU index, so its CUDA ordinals follow the
// node's order.
func Place(devices []DeviceState, req PodRequest) (Placement, error) {
	if err := req.Validate(); err != nil {
		return Placement{}, fmt.Errorf("place pod: %w", err)
	}
	if err := checkNames(&req); err != nil {
		return Placement{}, fmt.Errorf("place pod: %w", err)
	}
	if err := checkInventory(devices); err != nil {
		return Placement{}, fmt.Errorf("place pod: %w", err)
	}
	if !slices.ContainsFunc(req.Containers, func(c ContainerRequest) bool { return c.GPUs > 0 }) {
		return Placement{}, nil
	}
	gpus := usableGPUs(devices, &req.Selector)
	byPolicy := compareForPolicy(req.GPUPolicy)
	slices.SortFunc(gpus, byPolicy)
	if chosen, ok := placeGreedy(slices.Clone(gpus), &req, byPolicy); ok {
		return buildPlacement(devices, &req, chosen), nil
	}
	p := newPacker(gpus, &req, searchBudget)
	fits, decided := p.feasible(1, searchBudget)
	if fits {
		chosen, err := p.assign(&req)
		if err != nil {
			return Placement{}, fmt.Errorf("place pod: %w", err)
		}
		return buildPlacement(devices, &req, chosen), nil
	}
	return Placement{}, diagnose(devices, &req, !decided)
}

// usableGPUs lists the devices a pod with this selector may use, with what
// is free on them.
func usableGPUs(devices []DeviceState, sel *Selector) []packGPU {
	gpus := make([]packGPU, 0, len(devices))
	for i := range devices {
		d := &devices[i]
		if !usable(d, sel) {
			continue
		}
		// Clamping absurd capacities keeps every sum over GPUs and copies
		// far from overflow; no real GPU comes near these bounds.
		free := d.Free()
		free.Slots, free.Cores = min(free.Slots, Unlimited), min(free.Cores, Unlimited)
		free.MemoryMiB = min(free.MemoryMiB, maxMemoryMiB)
		gpus = append(gpus, packGPU{pos: i, index: d.Index, free: free, memCap: min(d.MemoryMiB, maxMemoryMiB)})
	}
	return gpus
}

// maxMemoryMiB bounds the memory the fit algorithm reasons about (1 EiB).
const maxMemoryMiB = 1 << 40

// compareForPolicy orders GPUs best first. Every field of the free capacity
// and the memory size come before the index, so that interchangeable GPUs
// end up next to each other (the exact search relies on it).
func compareForPolicy(policy Policy) func(a, b packGPU) int {
	sign := 1 // binpack: least free first
	if policy == Spread {
		sign = -1
	}
	return func(a, b packGPU) int {
		if c := sign * cmp.Compare(a.free.MemoryMiB, b.free.MemoryMiB); c != 0 {
			return c
		}
		if c := sign * cmp.Compare(a.free.Cores, b.free.Cores); c != 0 {
			return c
		}
		if c := sign * cmp.Compare(a.free.Slots, b.free.Slots); c != 0 {
			return c
		}
		if c := sign * cmp.Compare(a.memCap, b.memCap); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.pos, b.pos))
	}
}

// placeGreedy places the containers hardest first, each on the GPUs the
// policy prefers given what the earlier ones took, taking their usage from
// work (which it reorders). chosen is indexed like req.Containers and holds
// positions into devices.
func placeGreedy(work []packGPU, req *PodRequest, byPolicy func(a, b packGPU) int) (chosen [][]int, ok bool) {
	order := make([]int, 0, len(req.Containers))
	for ci, c := range req.Containers {
		if c.GPUs > 0 {
			order = append(order, ci)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return compareHardness(req.Containers[a], req.Containers[b]) })
	chosen = make([][]int, len(req.Containers))
	for _, ci := range order {
		c := req.Containers[ci]
		d := demandOf(c)
		slices.SortFunc(work, byPolicy) // earlier containers (or copies) changed what is free
		picked := make([]int, 0, c.GPUs)
		for i := range work {
			if len(picked) == c.GPUs {
				break
			}
			if d.fits(work[i].free, work[i].memCap) {
				picked = append(picked, i)
			}
		}
		if len(picked) < c.GPUs {
			return nil, false
		}
		for _, i := range picked {
			work[i].free = work[i].free.sub(d.usage(work[i].memCap))
			chosen[ci] = append(chosen[ci], work[i].pos)
		}
	}
	return chosen, true
}

// compareHardness orders containers hardest to place first.
func compareHardness(a, b ContainerRequest) int {
	if c := cmp.Compare(b.GPUs, a.GPUs); c != 0 {
		return c
	}
	if a.WholeMemory != b.WholeMemory {
		if a.WholeMemory {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(b.MemoryPercent, a.MemoryPercent), cmp.Compare(b.MemoryMiBPerGPU, a.MemoryMiBPerGPU), cmp.Compare(b.CoresPerGPU, a.CoresPerGPU))
}

func buildPlacement(devices []DeviceState, req *PodRequest, chosen [][]int) Placement {
	var out Placement
	for ci, c := range req.Containers {
		if c.GPUs <= 0 {
			continue
		}
		pos := chosen[ci]
		slices.SortFunc(pos, func(a, b int) int {
			return cmp.Or(cmp.Compare(devices[a].Index, devices[b].Index), cmp.Compare(a, b))
		})
		d := demandOf(c)
		cp := ContainerPlacement{Name: c.Name, Devices: make([]DeviceGrant, len(pos))}
		for i, p := range pos {
			cp.Devices[i] = DeviceGrant{UUID: devices[p].UUID, MemoryMiB: d.memOn(devices[p].MemoryMiB), Cores: d.cores}
		}
		out.Containers = append(out.Containers, cp)
	}
	return out
}

// checkNames rejects GPU containers without a name or with a name used
// twice: the placement is written and read back by container name.
func checkNames(req *PodRequest) error {
	for i, c := range req.Containers {
		if c.GPUs <= 0 {
			continue
		}
		if c.Name == "" {
			return fmt.Errorf("GPU container %d has no name", i)
		}
		for _, o := range req.Containers[:i] {
			if o.GPUs > 0 && o.Name == c.Name {
				return fmt.Errorf("two GPU containers are named %q", c.Name)
			}
		}
	}
	return nil
}

// checkInventory rejects GPUs without a UUID or listed twice: a grant names
// its GPU by UUID, so either would make the placement ambiguous.
func checkInventory(devices []DeviceState) error {
	for i := range devices {
		if devices[i].UUID == "" {
			return fmt.Errorf("GPU at position %d of the node's inventory has no UUID", i)
		}
		for j := range i {
			if devices[j].UUID == devices[i].UUID {
				return fmt.Errorf("GPU %s is listed twice in the node's inventory", devices[i].UUID)
			}
		}
	}
	return nil
}
