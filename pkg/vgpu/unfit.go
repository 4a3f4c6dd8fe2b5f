package vgpu

import (
	"fmt"
	"strings"
)

// Unfit is Place's error when a pod cannot be placed on a node. Its message
// is meant for the pod's owner (it ends up in a Kubernetes event), so it
// says in words what was needed and what the node's GPUs lacked.
type Unfit struct {
	// Container is the first container (in pod order) that does not fit
	// even on its own; empty when every container fits alone.
	Container string
	// Need describes what Container needs, e.g. "2 GPUs with 40960 MiB free".
	Need string
	// WithRoom counts the GPUs that have room for one share of Container,
	// of Total GPUs on the node; Skipped says why the others do not.
	WithRoom, Total int
	Skipped         Skips
	// Together lists every GPU container with its need ("train (2 GPUs
	// with 40960 MiB free)") when each fits alone but not all at once.
	Together []string
	// Usable counts the healthy GPUs the selector allows and Free sums
	// their free capacity (for the Together explanation).
	Usable int
	Free   Usage
	// GaveUp is set when the exact search ran out of budget before it
	// could decide (see searchBudget); the pod might fit.
	GaveUp bool

	wholeMemory bool // Container asks for whole GPUs: memory words differ
}

// Skips counts the GPUs that cannot take a container, by the first reason
// found, in this order.
type Skips struct {
	Unhealthy       int
	ExcludedByUUID  int
	ExcludedByModel int
	NoFreeSlot      int
	NotEnoughMemory int // for a whole-memory container: some memory in use
	NotEnoughCores  int
}

func (u *Unfit) Error() string {
	switch {
	case u.GaveUp:
		return fmt.Sprintf("gave up after trying %d combinations of GPUs for containers %s; the node might have room but the pod's containers are too intricate to place exactly",
			searchBudget, strings.Join(u.Together, ", "))
	case u.Container == "":
		return fmt.Sprintf("containers %s each fit alone but not together on the %s the pod may use (free on them: %d slots, %d MiB, %d%% cores)",
			strings.Join(u.Together, ", "), plural(u.Usable, "GPU", "GPUs"), u.Free.Slots, u.Free.MemoryMiB, u.Free.Cores)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "container %s needs %s; ", u.Container, u.Need)
	if u.Total == 0 {
		b.WriteString("the node has no GPUs")
		return b.String()
	}
	verb := "have"
	if u.WithRoom == 1 {
		verb = "has"
	}
	fmt.Fprintf(&b, "%d of %d GPUs %s room", u.WithRoom, u.Total, verb)
	memWords := "without enough free memory"
	if u.wholeMemory {
		memWords = "with memory in use"
	}
	var parts []string
	for _, s := range []struct {
		n     int
		words string
	}{
		{u.Skipped.Unhealthy, "unhealthy"},
		{u.Skipped.ExcludedByUUID, "excluded by UUID selector"},
		{u.Skipped.ExcludedByModel, "excluded by model selector"},
		{u.Skipped.NoFreeSlot, "without a free slot"},
		{u.Skipped.NotEnoughMemory, memWords},
		{u.Skipped.NotEnoughCores, "without enough free cores"},
	} {
		if s.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", s.n, s.words))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	return b.String()
}

// diagnose explains why req does not fit: the first container that does not
// fit alone, or else that the containers do not fit together.
func diagnose(devices []DeviceState, req *PodRequest, gaveUp bool) *Unfit {
	u := &Unfit{Total: len(devices), GaveUp: gaveUp}
	for i := range devices {
		if usable(&devices[i], &req.Selector) {
			u.Usable++
			u.Free = u.Free.Add(devices[i].Free())
		}
	}
	for _, c := range req.Containers {
		if c.GPUs > 0 {
			u.Together = append(u.Together, fmt.Sprintf("%s (%s)", c.Name, needWords(c)))
		}
	}
	if gaveUp {
		return u
	}
	for _, c := range req.Containers {
		if c.GPUs <= 0 {
			continue
		}
		room, skipped := countRoom(devices, req, demandOf(c))
		if room < c.GPUs {
			u.Container, u.Need, u.WithRoom, u.Skipped = c.Name, needWords(c), room, skipped
			u.wholeMemory = c.WholeMemory
			return u
		}
	}
	return u
}

// countRoom counts the GPUs with room for one container of demand d, and
// why the others have none.
func countRoom(devices []DeviceState, req *PodRequest, d unitDemand) (room int, skipped Skips) {
	for i := range devices {
		dev := &devices[i]
		free := dev.Free()
		switch {
		case !dev.Healthy:
			skipped.Unhealthy++
		case req.Selector.verdict(&dev.GPU) == excludedByUUID:
			skipped.ExcludedByUUID++
		case req.Selector.verdict(&dev.GPU) == excludedByModel:
			skipped.ExcludedByModel++
		case free.Slots < 1:
			skipped.NoFreeSlot++
		case d.memOn(dev.MemoryMiB) <= 0 || free.MemoryMiB < d.memOn(dev.MemoryMiB):
			skipped.NotEnoughMemory++
		case free.Cores < d.cores:
			skipped.NotEnoughCores++
		default:
			room++
		}
	}
	return room, skipped
}

// needWords describes a container's per-GPU need, e.g. "2 GPUs with
// 40960 MiB and 30% cores free" or "1 whole GPU with no memory in use".
func needWords(c ContainerRequest) string {
	var b strings.Builder
	if c.WholeMemory {
		fmt.Fprintf(&b, "%d whole %s with no memory in use", c.GPUs, pluralWord(c.GPUs, "GPU", "GPUs"))
		if c.CoresPerGPU > 0 {
			fmt.Fprintf(&b, " and %d%% cores free", c.CoresPerGPU)
		}
		return b.String()
	}
	if c.MemoryPercent > 0 {
		fmt.Fprintf(&b, "%s with %d%% of its memory", plural(c.GPUs, "GPU", "GPUs"), c.MemoryPercent)
	} else {
		fmt.Fprintf(&b, "%s with %d MiB", plural(c.GPUs, "GPU", "GPUs"), c.MemoryMiBPerGPU)
	}
	if c.CoresPerGPU > 0 {
		fmt.Fprintf(&b, " and %d%% cores", c.CoresPerGPU)
	}
	b.WriteString(" free")
	return b.String()
}

func plural(n int, one, many string) string { return fmt.Sprintf("%d %s", n, pluralWord(n, one, many)) }

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
