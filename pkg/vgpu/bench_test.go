package vgpu

import "testing"

// benchNode is an 8-GPU node (80 GiB A100s, 10 slots) whose first four GPUs
// are half used.
func benchNode() []DeviceState {
	devices := nodeOf(8)
	for i := range 4 {
		devices[i].Used = Usage{Slots: 5, MemoryMiB: 40960, Cores: 50}
	}
	return devices
}

var (
	benchOneGPU = pod(Binpack, ctr("main", 1, 10240, 20))
	benchTwoGPU = pod(Binpack, ctr("main", 2, 10240, 20))
	// Two containers with different per-GPU demands: the mixed path.
	benchTwoContainers = pod(Binpack, ctr("main", 2, 10240, 20), ctr("side", 1, 4096, 10))
)

var benchPods = []struct {
	name string
	req  PodRequest
}{
	{"1gpu", benchOneGPU},
	{"2gpu", benchTwoGPU},
	{"2containers", benchTwoContainers},
}

func BenchmarkPlace(b *testing.B) {
	devices := benchNode()
	for _, bp := range benchPods {
		b.Run(bp.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Place(devices, bp.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkMaxReplicas(b *testing.B) {
	devices := benchNode()
	for _, bp := range benchPods {
		b.Run(bp.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if MaxReplicas(devices, bp.req) == 0 {
					b.Fatal("nothing fits")
				}
			}
		})
	}
}
