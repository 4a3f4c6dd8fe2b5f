package vgpu

import (
	"fmt"
	"math"
)

// Unlimited is MaxReplicas' answer for a pod that asks for no GPU at all: a
// node's GPUs put no bound on how many copies of it fit, and the caller takes
// the minimum with its other resources (cpu, memory, pods). It is
// math.MaxInt32 so that it survives conversion to the int32 replica counts of
// Karmada's estimator API; MaxReplicas never answers more than it.
const Unlimited = math.MaxInt32

// maxGPUsPerContainer bounds a container's GPU count so that sums of GPU
// counts over a pod and over its copies never overflow.
const maxGPUsPerContainer = 1 << 16

// Validate reports whether the fit algorithm can reason about the request.
// Containers with no vGPU are ignored; every other container must have a
// positive memory share (or WholeMemory) and a core share in 0..FullCores.
// NewContainerRequest only builds valid containers; this guards requests
// built by hand.
func (r PodRequest) Validate() error {
	for _, c := range r.Containers {
		switch {
		case c.GPUs < 0 || c.GPUs > maxGPUsPerContainer:
			return fmt.Errorf("container %q asks for %d vGPUs", c.Name, c.GPUs)
		case c.GPUs == 0:
			continue
		case c.MemoryPercent < 0 || c.MemoryPercent >= 100 || (c.WholeMemory && c.MemoryPercent != 0):
			return fmt.Errorf("container %q asks for %d%% of each GPU's memory; it must be in 1..99 (100 is WholeMemory)", c.Name, c.MemoryPercent)
		case !c.WholeMemory && c.MemoryPercent == 0 && c.MemoryMiBPerGPU <= 0:
			return fmt.Errorf("container %q asks for %d MiB of GPU memory per GPU; it must be positive", c.Name, c.MemoryMiBPerGPU)
		case c.CoresPerGPU < 0 || c.CoresPerGPU > FullCores:
			return fmt.Errorf("container %q asks for %d%% cores per GPU; it must be in 0..%d", c.Name, c.CoresPerGPU, FullCores)
		}
	}
	return nil
}

// unitDemand is what one container takes from each of its GPUs: one slot,
// a memory share (fixed, or a percentage of each GPU's memory, the whole
// memory being 100%) and a core share. Containers with the same unitDemand
// are interchangeable except for how many GPUs they use.
type unitDemand struct {
	pct   int   // percent of each GPU's memory; 0 when mem is fixed
	mem   int64 // per GPU; unused when pct is set
	cores int
}

func demandOf(c ContainerRequest) unitDemand {
	switch {
	case c.WholeMemory:
		return unitDemand{pct: 100, cores: c.CoresPerGPU}
	case c.MemoryPercent > 0:
		return unitDemand{pct: c.MemoryPercent, cores: c.CoresPerGPU}
	}
	return unitDemand{mem: c.MemoryMiBPerGPU, cores: c.CoresPerGPU}
}

// fixedMem reports whether the memory share is the same on every GPU; the
// bounds that sum memory over GPUs (search.go) hold only for those.
func (u unitDemand) fixedMem() bool { return u.pct == 0 }

// memOn is the memory the demand takes from a GPU of the given capacity.
func (u unitDemand) memOn(memCap int64) int64 {
	if u.pct > 0 {
		return PercentOf(memCap, u.pct)
	}
	return u.mem
}

// usage is the capacity one container of this demand takes from a GPU.
func (u unitDemand) usage(memCap int64) Usage {
	return Usage{Slots: 1, MemoryMiB: u.memOn(memCap), Cores: u.cores}
}

// units is how many containers of this demand a GPU with the given free
// capacity can host, at most Unlimited. A memory demand of zero (whole
// memory of a GPU that has none) fits nowhere: such a grant would be empty.
func (u unitDemand) units(free Usage, memCap int64) int64 {
	m := u.memOn(memCap)
	if m <= 0 {
		return 0
	}
	n := min(int64(free.Slots), free.MemoryMiB/m, Unlimited)
	if u.cores > 0 {
		n = min(n, int64(free.Cores/u.cores))
	}
	return max(n, 0)
}

// fits reports whether one more container of this demand fits in free.
func (u unitDemand) fits(free Usage, memCap int64) bool { return u.units(free, memCap) >= 1 }

// usable reports whether a pod with this selector may use the device at all.
func usable(d *DeviceState, sel *Selector) bool { return d.Healthy && sel.verdict(&d.GPU) == selected }

// sub returns u minus o.
func (u Usage) sub(o Usage) Usage {
	return Usage{Slots: u.Slots - o.Slots, MemoryMiB: u.MemoryMiB - o.MemoryMiB, Cores: u.Cores - o.Cores}
}

// scaled returns u times n.
func (u Usage) scaled(n int64) Usage {
	return Usage{Slots: u.Slots * int(n), MemoryMiB: u.MemoryMiB * n, Cores: u.Cores * int(n)}
}

// covers reports whether u has at least o in every dimension.
func (u Usage) covers(o Usage) bool {
	return u.Slots >= o.Slots && u.MemoryMiB >= o.MemoryMiB && u.Cores >= o.Cores
}
