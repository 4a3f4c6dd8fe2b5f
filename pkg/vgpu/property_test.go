package vgpu

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// bruteForceMax is the reference packer: it tries every assignment of
// every container copy to a set of distinct GPUs (as bitmasks) and keeps
// only those within each GPU's free capacity. It shares no code with the
// fit algorithm except Free and Selector.Allows. Two reductions keep it
// small and are plainly sound: a partial assignment already over capacity
// is not extended (adding containers only adds usage), and the copies of
// one container are interchangeable, so their masks are tried in
// non-decreasing order only.
func bruteForceMax(devices []DeviceState, req PodRequest, limit int) int {
	for r := 1; r <= limit; r++ {
		if !bruteForceFits(devices, req, r) {
			return r - 1
		}
	}
	return limit
}

// refMem is the memory a container takes from a GPU of memCap MiB, written
// out independently of the fit code: the whole memory, HAMi's percentage
// rounded down, or the fixed share.
func refMem(c ContainerRequest, memCap int64) int64 {
	switch {
	case c.WholeMemory:
		return memCap
	case c.MemoryPercent > 0:
		return int64(math.Floor(float64(memCap) * float64(c.MemoryPercent) / 100))
	}
	return c.MemoryMiBPerGPU
}

func bruteForceFits(devices []DeviceState, req PodRequest, copies int) bool {
	type item struct {
		c          ContainerRequest
		sameAsPrev bool
	}
	var items []item
	for _, c := range req.Containers {
		if c.GPUs <= 0 {
			continue
		}
		for r := range copies {
			items = append(items, item{c: c, sameAsPrev: r > 0})
		}
	}
	n := len(devices)
	added := make([]Usage, n)
	masks := make([]int, len(items))
	var try func(i int) bool
	try = func(i int) bool {
		if i == len(items) {
			return true
		}
		c := items[i].c
		start := 0
		if items[i].sameAsPrev {
			start = masks[i-1]
		}
		for mask := start; mask < 1<<n; mask++ {
			if bits.OnesCount(uint(mask)) != c.GPUs {
				continue
			}
			ok := true
			for g := 0; g < n && ok; g++ {
				if mask&(1<<g) == 0 {
					continue
				}
				d := devices[g]
				mem := refMem(c, d.MemoryMiB)
				free := d.Free()
				after := added[g].Add(Usage{Slots: 1, MemoryMiB: mem, Cores: c.CoresPerGPU})
				ok = d.Healthy && req.Selector.Allows(d.GPU) && mem > 0 &&
					after.Slots <= free.Slots && after.MemoryMiB <= free.MemoryMiB && after.Cores <= free.Cores
			}
			if !ok {
				continue
			}
			for g := range n {
				if mask&(1<<g) != 0 {
					mem := refMem(c, devices[g].MemoryMiB)
					added[g] = added[g].Add(Usage{Slots: 1, MemoryMiB: mem, Cores: c.CoresPerGPU})
				}
			}
			masks[i] = mask
			found := try(i + 1)
			for g := range n {
				if mask&(1<<g) != 0 {
					mem := refMem(c, devices[g].MemoryMiB)
					added[g] = added[g].sub(Usage{Slots: 1, MemoryMiB: mem, Cores: c.CoresPerGPU})
				}
			}
			if found {
				return true
			}
		}
		return false
	}
	return try(0)
}

// randomNode makes a small node: 1-4 GPUs with small capacities, often
// partly used, a few unhealthy or without memory or slots, two models.
func randomNode(rng *rand.Rand) []DeviceState {
	n := 1 + rng.IntN(4)
	devices := make([]DeviceState, n)
	for i := range devices {
		g := GPU{
			UUID:      fmt.Sprintf("GPU-%d", i),
			Index:     rng.IntN(n + 1), // duplicate indices exercise the tie-breaks
			Model:     []string{"NVIDIA A100-SXM4-80GB", "Tesla T4"}[rng.IntN(2)],
			MemoryMiB: int64(1+rng.IntN(8)) * 1000,
			Slots:     1 + rng.IntN(6),
			Cores:     []int{100, 100, 100, 50, 0}[rng.IntN(5)],
			Healthy:   rng.IntN(10) > 0,
		}
		switch rng.IntN(20) {
		case 0:
			g.MemoryMiB = 0
		case 1:
			g.Slots = 0
		}
		var used Usage
		if rng.IntN(2) == 0 {
			used = Usage{
				Slots:     rng.IntN(g.Slots/2 + 1),
				MemoryMiB: int64(rng.IntN(int(g.MemoryMiB/1000)+1)) * 500,
				Cores:     rng.IntN(g.Cores/50+1) * 25,
			}
		}
		devices[i] = DeviceState{GPU: g, Used: used}
	}
	return devices
}

// randomRequest makes a pod of 1-3 GPU containers (sometimes plus one
// without GPUs), uniform or mixed, with random selectors and policies.
func randomRequest(rng *rand.Rand, gpus int) PodRequest {
	randomDemand := func() ContainerRequest {
		return ContainerRequest{
			MemoryMiBPerGPU: int64(1+rng.IntN(4)) * 500,
			WholeMemory:     rng.IntN(8) == 0,
			CoresPerGPU:     []int{0, 0, 10, 25, 50, 100}[rng.IntN(6)],
		}
	}
	// A memory percentage (HAMi's gpumem-percentage) makes the share differ
	// between GPUs of different sizes, as WholeMemory does.
	withPercent := func(c ContainerRequest) ContainerRequest {
		if !c.WholeMemory && rng.IntN(6) == 0 {
			c.MemoryPercent = []int{1, 10, 25, 33, 50, 99}[rng.IntN(6)]
		}
		return c
	}
	shared := withPercent(randomDemand())
	uniform := rng.IntN(3) == 0
	var req PodRequest
	for i := range 1 + rng.IntN(3) {
		c := shared
		if !uniform {
			c = withPercent(randomDemand())
		}
		c.Name = fmt.Sprintf("c%d", i)
		c.GPUs = 1 + rng.IntN(min(gpus, 3))
		if rng.IntN(2) == 0 {
			c.GPUs = 1
		}
		req.Containers = append(req.Containers, c)
	}
	if rng.IntN(10) == 0 {
		req.Containers = append(req.Containers, ContainerRequest{Name: "sidecar"})
	}
	switch rng.IntN(8) {
	case 0:
		req.Selector.IncludeModels = []string{"a100"}
	case 1:
		req.Selector.ExcludeModels = []string{"t4"}
	case 2:
		req.Selector.ExcludeUUIDs = []string{"GPU-0"}
	}
	req.GPUPolicy = []Policy{Binpack, Spread}[rng.IntN(2)]
	return req
}

func cloneDevices(d []DeviceState) []DeviceState { return slices.Clone(d) }

func cloneRequest(r PodRequest) PodRequest {
	r.Containers = slices.Clone(r.Containers)
	r.Selector.IncludeModels = slices.Clone(r.Selector.IncludeModels)
	r.Selector.ExcludeModels = slices.Clone(r.Selector.ExcludeModels)
	r.Selector.IncludeUUIDs = slices.Clone(r.Selector.IncludeUUIDs)
	r.Selector.ExcludeUUIDs = slices.Clone(r.Selector.ExcludeUUIDs)
	return r
}

// TestFitMatchesBruteForce is the property test: on thousands of random
// small nodes, MaxReplicas equals the exhaustive reference, the exact search
// agrees with it on every shape (uniform pods included) without running out
// of budget, Place succeeds iff one copy fits and returns valid placements
// without touching its input, Check answers as Place, and NodeScore is 0 iff
// the pod does not fit.
func TestFitMatchesBruteForce(t *testing.T) {
	cases := 20000
	if testing.Short() {
		cases = 2000
	}
	rng := rand.New(rand.NewPCG(20240611, 7))
	// Coverage of the population, asserted at the end so that a change to
	// the generators cannot quietly make the test trivial.
	var mixedFitting, severalCopies, greedyCorners int
	for i := range cases {
		devices := randomNode(rng)
		req := randomRequest(rng, len(devices))
		name := fmt.Sprintf("case %d: devices %+v request %+v", i, devices, req)

		var totalSlots, perCopy int
		for _, d := range devices {
			totalSlots += d.Free().Slots
		}
		for _, c := range req.Containers {
			perCopy += c.GPUs
		}
		want := bruteForceMax(devices, req, totalSlots/perCopy+1)

		devicesBefore, reqBefore := cloneDevices(devices), cloneRequest(req)
		got, exact := maxReplicas(devices, &req, searchBudget)
		if got != want || !exact {
			t.Fatalf("%s: MaxReplicas = %d (exact %v), brute force %d", name, got, exact, want)
		}
		if searched, exact := mixedMax(devices, &req, searchBudget); searched != want || !exact {
			t.Fatalf("%s: exact search = %d (exact %v), brute force %d", name, searched, exact, want)
		}

		p, err := Place(devices, req)
		var unfit *Unfit
		if cerr := Check(devices, req); (cerr == nil) != (err == nil) || (err != nil && cerr.Error() != err.Error()) {
			t.Fatalf("%s: Check = %v, Place = %v", name, cerr, err)
		}
		switch {
		case want > 0 && err != nil:
			t.Fatalf("%s: Place failed although %d copies fit: %v", name, want, err)
		case want == 0 && !errors.As(err, &unfit):
			t.Fatalf("%s: Place = %+v, %v; want *Unfit", name, p, err)
		case unfit != nil && unfit.GaveUp:
			t.Fatalf("%s: Place gave up: %v", name, err)
		case err == nil:
			checkPlacement(t, name, devices, req, p)
		}
		if !reflect.DeepEqual(devices, devicesBefore) || !reflect.DeepEqual(req, reqBefore) {
			t.Fatalf("%s: the fit algorithm modified its input", name)
		}
		if score := NodeScore(devices, req, req.GPUPolicy); (score > 0) != (want > 0) || score > 100 {
			t.Fatalf("%s: NodeScore = %d with %d copies fitting", name, score, want)
		}

		if _, _, uniform := shapeOf(&req); !uniform && want > 0 {
			mixedFitting++
		}
		if want > 1 {
			severalCopies++
		}
		gpus := usableGPUs(devices, &req.Selector)
		slices.SortFunc(gpus, compareForPolicy(req.GPUPolicy))
		if _, ok := placeGreedy(slices.Clone(gpus), &req, compareForPolicy(req.GPUPolicy)); want > 0 && !ok {
			greedyCorners++
		}
	}
	t.Logf("%d cases: %d mixed pods that fit, %d with several copies, %d where only the exact search placed the pod",
		cases, mixedFitting, severalCopies, greedyCorners)
	if mixedFitting < cases/20 || severalCopies < cases/10 || greedyCorners == 0 {
		t.Fatal("the random population no longer covers mixed pods, several copies and greedy corners")
	}
}

// checkPlacement asserts that p is a valid placement of req on devices:
// every GPU container gets its number of distinct, healthy, allowed GPUs
// with its exact shares, no GPU ends up over its free capacity, Apply
// accepts it, and Release then gives the devices back.
func checkPlacement(t *testing.T, name string, devices []DeviceState, req PodRequest, p Placement) {
	t.Helper()
	taken := make(map[string]Usage)
	var gpuContainers []ContainerRequest
	for _, c := range req.Containers {
		if c.GPUs > 0 {
			gpuContainers = append(gpuContainers, c)
		}
	}
	if len(p.Containers) != len(gpuContainers) {
		t.Fatalf("%s: placement %+v has %d containers, want %d", name, p, len(p.Containers), len(gpuContainers))
	}
	for i, c := range gpuContainers {
		cp := p.Containers[i]
		if cp.Name != c.Name || len(cp.Devices) != c.GPUs {
			t.Fatalf("%s: placement %+v: container %d is %q with %d GPUs, want %q with %d", name, p, i, cp.Name, len(cp.Devices), c.Name, c.GPUs)
		}
		seen := map[string]bool{}
		lastIndex := -1
		for _, g := range cp.Devices {
			at := indexOfUUID(devices, g.UUID)
			if at < 0 || seen[g.UUID] {
				t.Fatalf("%s: placement %+v: GPU %s unknown or given twice to %s", name, p, g.UUID, c.Name)
			}
			seen[g.UUID] = true
			d := devices[at]
			if !d.Healthy || !req.Selector.Allows(d.GPU) {
				t.Fatalf("%s: placement %+v: GPU %s is unhealthy or not allowed", name, p, g.UUID)
			}
			if d.Index < lastIndex {
				t.Fatalf("%s: placement %+v: container %s's GPUs are not in index order", name, p, c.Name)
			}
			lastIndex = d.Index
			wantMem := refMem(c, d.MemoryMiB)
			if g.MemoryMiB != wantMem || g.Cores != c.CoresPerGPU {
				t.Fatalf("%s: placement %+v: grant %+v, want %d MiB and %d%% cores", name, p, g, wantMem, c.CoresPerGPU)
			}
			taken[g.UUID] = taken[g.UUID].Add(Usage{Slots: 1, MemoryMiB: g.MemoryMiB, Cores: g.Cores})
		}
	}
	for uuid, u := range taken {
		if free := devices[indexOfUUID(devices, uuid)].Free(); !free.covers(u) {
			t.Fatalf("%s: placement %+v takes %+v from GPU %s, which has %+v free", name, p, u, uuid, free)
		}
	}
	after, err := Apply(devices, p)
	if err != nil {
		t.Fatalf("%s: Apply(%+v): %v", name, p, err)
	}
	if slices.ContainsFunc(devices, func(d DeviceState) bool {
		return d.Used.Slots < 0 || d.Used.MemoryMiB < 0 || d.Used.Cores < 0
	}) {
		return // Release rightly refuses to go below zero again
	}
	back, err := Release(after, p)
	if err != nil || !reflect.DeepEqual(back, devices) {
		t.Fatalf("%s: Release(Apply(p)) = %+v, %v; want the devices back", name, back, err)
	}
}
