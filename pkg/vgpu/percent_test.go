package vgpu

import "testing"

// TestMemoryPercent: a percentage of each GPU's memory (HAMi's
// gpumem-percentage) is resolved per GPU, rounded down as HAMi does, and
// MaxReplicas counts it exactly on GPUs of different sizes.
func TestMemoryPercent(t *testing.T) {
	pct := func(p, gpus, cores int) ContainerRequest {
		return ContainerRequest{Name: "main", GPUs: gpus, MemoryPercent: p, CoresPerGPU: cores}
	}
	// 80 GiB, 40 GiB and 24 GiB GPUs; the 40 GiB one has 20000 MiB in use.
	mixed := []DeviceState{
		dev(0, memory(81920)),
		dev(1, memory(40960), used(1, 20000, 0)),
		dev(2, memory(24000)),
	}
	tests := []struct {
		name    string
		devices []DeviceState
		req     PodRequest
		want    int
	}{
		// 81920*25/100 = 20480 (4 fit), 40960*25/100 = 10240 (2 fit in
		// 20960 free), 24000*25/100 = 6000 (4 fit).
		{"25% of each GPU", mixed, pod(Binpack, pct(25, 1, 0)), 10},
		{"two GPUs of 25% each", mixed, pod(Binpack, pct(25, 2, 0)), 5},
		// 99% leaves no room for a second copy on any GPU, and the used
		// 40 GiB GPU has not 99% free.
		{"99%", mixed, pod(Binpack, pct(99, 1, 0)), 2},
		{"cores bound the count", mixed, pod(Binpack, pct(10, 1, 50)), 6},
		// A fixed share beside a percentage: the mixed search.
		{"mixed with a fixed share", mixed, pod(Binpack, pct(50, 1, 0), ctr("side", 1, 20000, 0)), 3},
		// 1% of a 99 MiB GPU is 0 MiB: an empty grant fits nowhere.
		{"rounds down to nothing", []DeviceState{dev(0, memory(99))}, pod(Binpack, pct(1, 1, 0)), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxReplicas(tt.devices, tt.req); got != tt.want {
				t.Errorf("MaxReplicas = %d, want %d", got, tt.want)
			}
			if ref := bruteForceMax(tt.devices, tt.req, tt.want+1); ref != tt.want {
				t.Errorf("brute force = %d, want %d (the table is wrong)", ref, tt.want)
			}
			p, err := Place(tt.devices, tt.req)
			if (err == nil) != (tt.want > 0) {
				t.Fatalf("Place = %+v, %v with %d copies fitting", p, err, tt.want)
			}
			if err == nil {
				checkPlacement(t, tt.name, tt.devices, tt.req, p)
			}
		})
	}
}

func TestMemoryPercentDemandAndValidate(t *testing.T) {
	g := GPU{MemoryMiB: 81920}
	if got := (ContainerRequest{GPUs: 1, MemoryPercent: 33}).Demand(g); got.MemoryMiB != 27033 {
		t.Errorf("33%% of 81920 MiB = %d MiB, want 27033 (rounded down)", got.MemoryMiB)
	}
	bad := []ContainerRequest{
		{Name: "a", GPUs: 1, MemoryPercent: 100},
		{Name: "b", GPUs: 1, MemoryPercent: -1},
		{Name: "c", GPUs: 1, MemoryPercent: 50, WholeMemory: true},
	}
	for _, c := range bad {
		if err := (PodRequest{Containers: []ContainerRequest{c}}).Validate(); err == nil {
			t.Errorf("Validate accepted %+v", c)
		}
	}
	if err := (PodRequest{Containers: []ContainerRequest{{Name: "ok", GPUs: 1, MemoryPercent: 50}}}).Validate(); err != nil {
		t.Errorf("Validate(50%%): %v", err)
	}
}
