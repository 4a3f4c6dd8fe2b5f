package vgpu

import "math"

// NodeScore rates a node for the pod in 0..100, for the extender's
// prioritize: 0 when the pod does not fit (as Place decides), otherwise
// 1..100 from how full the node's GPUs that the pod may use already are
// (the mean of their memory and core utilisation). Binpack scores fuller
// nodes higher, so that emptier nodes stay whole for large pods; spread
// scores emptier nodes higher. Any policy other than Spread is binpack.
func NodeScore(devices []DeviceState, req PodRequest, policy Policy) int {
	if !fitsOnce(devices, &req) {
		return 0
	}
	var capMem, freeMem int64
	var capCores, freeCores int
	for i := range devices {
		d := &devices[i]
		if !usable(d, &req.Selector) {
			continue
		}
		f := d.Free()
		capMem += max(d.MemoryMiB, 0)
		freeMem += min(f.MemoryMiB, max(d.MemoryMiB, 0))
		capCores += max(d.Cores, 0)
		freeCores += min(f.Cores, max(d.Cores, 0))
	}
	var util float64
	var dims int
	if capMem > 0 {
		util += 1 - float64(freeMem)/float64(capMem)
		dims++
	}
	if capCores > 0 {
		util += 1 - float64(freeCores)/float64(capCores)
		dims++
	}
	if dims > 0 {
		util /= float64(dims)
	}
	if policy == Spread {
		util = 1 - util
	}
	return 1 + int(math.Round(99*util))
}
