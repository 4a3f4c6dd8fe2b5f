package vgpu

import "fmt"

// Apply returns a copy of devices with the placement's usage added: one
// slot, the grant's memory and its cores on every GPU granted to every
// container. It is the extender's bookkeeping for pods it has placed but the
// node has not yet reported. It fails, leaving devices alone, when a grant
// names a GPU the node does not list, gives a container the same GPU twice,
// has no memory or cores out of 0..FullCores, or would take a GPU past its
// capacity.
func Apply(devices []DeviceState, p Placement) ([]DeviceState, error) {
	out, err := changeUsage(devices, p, 1)
	if err != nil {
		return nil, fmt.Errorf("apply placement: %w", err)
	}
	return out, nil
}

// Release is the inverse of Apply: it returns a copy of devices with the
// placement's usage taken away. It fails when a grant names an unknown GPU
// or would leave a GPU with less than nothing in use (releasing something
// that was never applied).
func Release(devices []DeviceState, p Placement) ([]DeviceState, error) {
	out, err := changeUsage(devices, p, -1)
	if err != nil {
		return nil, fmt.Errorf("release placement: %w", err)
	}
	return out, nil
}

func changeUsage(devices []DeviceState, p Placement, sign int) ([]DeviceState, error) {
	if err := checkInventory(devices); err != nil {
		return nil, err
	}
	out := make([]DeviceState, len(devices))
	copy(out, devices)
	for _, c := range p.Containers {
		for i, g := range c.Devices {
			switch {
			case g.MemoryMiB <= 0:
				return nil, fmt.Errorf("container %q: GPU %s is granted %d MiB; a grant needs memory", c.Name, g.UUID, g.MemoryMiB)
			case g.Cores < 0 || g.Cores > FullCores:
				return nil, fmt.Errorf("container %q: GPU %s is granted %d%% cores; want 0..%d", c.Name, g.UUID, g.Cores, FullCores)
			}
			for _, prev := range c.Devices[:i] {
				if prev.UUID == g.UUID {
					return nil, fmt.Errorf("container %q is granted GPU %s twice", c.Name, g.UUID)
				}
			}
			at := indexOfUUID(out, g.UUID)
			if at < 0 {
				return nil, fmt.Errorf("container %q is granted GPU %s, which the node does not list", c.Name, g.UUID)
			}
			delta := Usage{Slots: 1, MemoryMiB: g.MemoryMiB, Cores: g.Cores}
			d := &out[at]
			// Only dimensions the grant takes something from are checked: a
			// container without a core cap may join a GPU whose cores are
			// already overcommitted, as Place allows.
			if sign > 0 {
				d.Used = d.Used.Add(delta)
				if d.Used.Slots > d.Slots || d.Used.MemoryMiB > d.MemoryMiB || (delta.Cores > 0 && d.Used.Cores > d.Cores) {
					return nil, fmt.Errorf("container %q would take GPU %s past its capacity: %d of %d slots, %d of %d MiB, %d%% of %d%% cores in use",
						c.Name, g.UUID, d.Used.Slots, d.Slots, d.Used.MemoryMiB, d.MemoryMiB, d.Used.Cores, d.Cores)
				}
				continue
			}
			d.Used = d.Used.sub(delta)
			if d.Used.Slots < 0 || d.Used.MemoryMiB < 0 || (delta.Cores > 0 && d.Used.Cores < 0) {
				return nil, fmt.Errorf("container %q releases more of GPU %s than is in use (it would have %d slots, %d MiB, %d%% cores in use)",
					c.Name, g.UUID, d.Used.Slots, d.Used.MemoryMiB, d.Used.Cores)
			}
		}
	}
	return out, nil
}

func indexOfUUID(devices []DeviceState, uuid string) int {
	for i := range devices {
		if devices[i].UUID == uuid {
			return i
		}
	}
	return -1
}
