package vgpu

import "fmt"

// dev is GPU i of a test node: an 80 GiB A100 with 10 slots, free unless
// options say otherwise.
func dev(i int, opts ...func(*DeviceState)) DeviceState {
	d := DeviceState{GPU: GPU{
		UUID: fmt.Sprintf("GPU-%d", i), Index: i, Model: "NVIDIA A100-SXM4-80GB",
		MemoryMiB: 81920, Slots: 10, Cores: FullCores, Healthy: true,
	}}
	for _, o := range opts {
		o(&d)
	}
	return d
}

func used(slots int, mem int64, cores int) func(*DeviceState) {
	return func(d *DeviceState) { d.Used = Usage{Slots: slots, MemoryMiB: mem, Cores: cores} }
}

func unhealthy(d *DeviceState) { d.Healthy = false }

func model(m string) func(*DeviceState) { return func(d *DeviceState) { d.Model = m } }

func memory(m int64) func(*DeviceState) { return func(d *DeviceState) { d.MemoryMiB = m } }

func slots(n int) func(*DeviceState) { return func(d *DeviceState) { d.Slots = n } }

func index(i int) func(*DeviceState) { return func(d *DeviceState) { d.Index = i } }

// ctr is a container asking for gpus GPUs with mem MiB and cores percent
// on each.
func ctr(name string, gpus int, mem int64, cores int) ContainerRequest {
	return ContainerRequest{Name: name, GPUs: gpus, MemoryMiBPerGPU: mem, CoresPerGPU: cores}
}

// wholeCtr is a container asking for whole GPUs (no memory request).
func wholeCtr(name string, gpus, cores int) ContainerRequest {
	return ContainerRequest{Name: name, GPUs: gpus, WholeMemory: true, CoresPerGPU: cores}
}

func pod(policy Policy, cs ...ContainerRequest) PodRequest {
	return PodRequest{Containers: cs, GPUPolicy: policy}
}

func nodeOf(n int, opts ...func(*DeviceState)) []DeviceState {
	out := make([]DeviceState, n)
	for i := range out {
		out[i] = dev(i, opts...)
	}
	return out
}

// uuidsOf summarises a placement as container name -> GPU UUIDs.
func uuidsOf(p Placement) map[string][]string {
	out := make(map[string][]string, len(p.Containers))
	for _, c := range p.Containers {
		for _, g := range c.Devices {
			out[c.Name] = append(out[c.Name], g.UUID)
		}
	}
	return out
}
