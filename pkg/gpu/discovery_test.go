package gpu

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func defaultOptions() TrackerOptions {
	return TrackerOptions{SplitCount: 10, MemoryScaling: 1}
}

func newMock(t testing.TB, node config.MockNode, seed string) *MockLibrary {
	t.Helper()
	lib, err := NewMockLibrary(node, seed)
	if err != nil {
		t.Fatalf("NewMockLibrary(%+v, %q): %v", node, seed, err)
	}
	return lib
}

func mockDevice(lib *MockLibrary, i int) *server.Device { return lib.Devices[i].(*server.Device) }

func TestDiscovery(t *testing.T) {
	type model struct {
		name      string
		memoryMiB int64
		count     int
	}
	tests := []struct {
		name   string
		node   config.MockNode
		models []model // expected GPUs in enumeration order
	}{
		{"dgxa100", config.MockNode{Machine: "dgxa100"}, []model{{"Mock NVIDIA A100-SXM4-40GB", 40960, 8}}},
		{"dgxh100", config.MockNode{Machine: "dgxh100"}, []model{{"NVIDIA H100 80GB HBM3", 81920, 8}}},
		{"dgxh200", config.MockNode{Machine: "DGXH200"}, []model{{"NVIDIA H200 141GB HBM3e", 144384, 8}}},
		{"mixed", config.MockNode{GPUs: []config.MockGPU{
			{Model: "A100-SXM4-40GB", Count: 2}, {Model: "h100_sxm5_80gb", Count: 1}, {Model: "NVIDIA A30-PCIE-24GB", Count: 1},
		}}, []model{
			{"Mock NVIDIA A100-SXM4-40GB", 40960, 2}, {"NVIDIA H100 80GB HBM3", 81920, 1}, {"NVIDIA A30-PCIE-24GB", 24576, 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib := newMock(t, tc.node, "node-a")
			tr, err := NewTracker(lib, defaultOptions())
			if err != nil {
				t.Fatalf("NewTracker: %v", err)
			}
			defer tr.Shutdown()
			var want []vgpu.GPU
			for _, m := range tc.models {
				for range m.count {
					want = append(want, vgpu.GPU{Model: m.name, MemoryMiB: m.memoryMiB, Slots: 10, Cores: vgpu.FullCores, Healthy: true})
				}
			}
			got := tr.GPUs()
			if len(got) != len(want) {
				t.Fatalf("discovered %d GPUs, want %d: %+v", len(got), len(want), got)
			}
			seen := map[string]bool{}
			for i, g := range got {
				w := want[i]
				w.UUID, w.Index = mockDevice(lib, i).UUID, i
				w.NUMANode = i * 2 / len(want)
				if g != w {
					t.Errorf("GPU %d = %+v, want %+v", i, g, w)
				}
				if !strings.HasPrefix(g.UUID, "GPU-") || seen[g.UUID] {
					t.Errorf("GPU %d UUID %q is malformed or repeated", i, g.UUID)
				}
				seen[g.UUID] = true
			}
		})
	}
}

func TestMemoryScaling(t *testing.T) {
	tests := []struct {
		scaling float64
		want    int64 // for an A100 40GB, 40960 MiB
	}{
		{1, 40960},
		{0.5, 20480},
		{1.5, 61440},
		{0.3, 12288}, // 0.3 × 40960 in binary floating point is 12287.999…
		{1.1, 45056},
		{0.0001, 4},
		{10, 409600},
	}
	for _, tc := range tests {
		lib := newMock(t, config.MockNode{Machine: "dgxa100"}, "node-a")
		opts := defaultOptions()
		opts.MemoryScaling = tc.scaling
		tr, err := NewTracker(lib, opts)
		if err != nil {
			t.Fatalf("scaling %v: NewTracker: %v", tc.scaling, err)
		}
		for _, g := range tr.GPUs() {
			if g.MemoryMiB != tc.want {
				t.Errorf("scaling %v: GPU %d memory %d MiB, want %d", tc.scaling, g.Index, g.MemoryMiB, tc.want)
			}
		}
		tr.Shutdown()
	}
}

func TestMockUUIDsAreStablePerSeedAndDistinctAcrossSeeds(t *testing.T) {
	uuids := func(seed string) []string {
		lib := newMock(t, config.MockNode{Machine: "dgxh100"}, seed)
		tr, err := NewTracker(lib, defaultOptions())
		if err != nil {
			t.Fatalf("NewTracker: %v", err)
		}
		defer tr.Shutdown()
		var out []string
		for _, g := range tr.GPUs() {
			out = append(out, g.UUID)
		}
		return out
	}
	a1, a2, b := uuids("node-a"), uuids("node-a"), uuids("node-b")
	if strings.Join(a1, ",") != strings.Join(a2, ",") {
		t.Errorf("same seed gave different UUIDs:\n%v\n%v", a1, a2)
	}
	inA := map[string]bool{}
	for _, u := range a1 {
		inA[u] = true
	}
	for _, u := range b {
		if inA[u] {
			t.Errorf("UUID %s appears on both node-a and node-b", u)
		}
	}
}

func TestNewTrackerRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*TrackerOptions)
		want   string
	}{
		{"zero split count", func(o *TrackerOptions) { o.SplitCount = 0 }, "split count 0"},
		{"huge split count", func(o *TrackerOptions) { o.SplitCount = config.MaxSplitCount + 1 }, "split count"},
		{"zero scaling", func(o *TrackerOptions) { o.MemoryScaling = 0 }, "memory scaling 0"},
		{"NaN scaling", func(o *TrackerOptions) { o.MemoryScaling = math.NaN() }, "memory scaling NaN"},
		{"negative recovery", func(o *TrackerOptions) { o.Recovery = -1 }, "recovery -1ns"},
		{"negative wait", func(o *TrackerOptions) { o.EventWaitTimeout = -1 }, "event wait timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := defaultOptions()
			tc.modify(&opts)
			_, err := NewTracker(newMock(t, config.MockNode{Machine: "dgxa100"}, "n"), opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewTracker error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestNVMLErrorsAreWrapped(t *testing.T) {
	lost := nvml.ERROR_GPU_IS_LOST
	tests := []struct {
		name     string
		breakLib func(*MockLibrary)
		want     string // in the error message
	}{
		{"init", func(l *MockLibrary) { l.InitFunc = func() nvml.Return { return lost } }, "initialize NVML"},
		{"count", func(l *MockLibrary) { l.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, lost } }, "count GPUs"},
		{"handle", func(l *MockLibrary) {
			l.DeviceGetHandleByIndexFunc = func(int) (nvml.Device, nvml.Return) { return nil, lost }
		}, "discover GPU 0: get device handle"},
		{"uuid", func(l *MockLibrary) {
			mockDevice(l, 2).GetUUIDFunc = func() (string, nvml.Return) { return "", lost }
		}, "discover GPU 2: get UUID"},
		{"name", func(l *MockLibrary) {
			mockDevice(l, 5).GetNameFunc = func() (string, nvml.Return) { return "", lost }
		}, "discover GPU 5: get model name of GPU-"},
		{"memory", func(l *MockLibrary) {
			mockDevice(l, 3).GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, lost }
		}, "discover GPU 3: get memory info of GPU-"},
		{"index", func(l *MockLibrary) {
			mockDevice(l, 7).GetIndexFunc = func() (int, nvml.Return) { return 0, lost }
		}, "discover GPU 7: get index"},
		{"numa", func(l *MockLibrary) {
			mockDevice(l, 1).GetNumaNodeIdFunc = func() (int, nvml.Return) { return 0, lost }
		}, "discover GPU 1: get NUMA node"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib := newMock(t, config.MockNode{Machine: "dgxa100"}, "n")
			inits, shutdowns := 0, 0
			lib.InitFunc = func() nvml.Return { inits++; return nvml.SUCCESS }
			lib.ShutdownFunc = func() nvml.Return { shutdowns++; return nvml.SUCCESS }
			tc.breakLib(lib)
			tr, err := NewTracker(lib, defaultOptions())
			if err == nil {
				tr.Shutdown()
				t.Fatal("NewTracker succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, lost) {
				t.Fatalf("error %q does not contain %q or wrap %v", err, tc.want, lost)
			}
			if inits != shutdowns {
				t.Errorf("NVML initialised %d times but shut down %d times", inits, shutdowns)
			}
		})
	}
}

func TestNUMAFallsBackToSysfs(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys/bus/pci/devices/0000:3b:00.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "numa_node"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lib := newMock(t, config.MockNode{GPUs: []config.MockGPU{{Model: "A100-PCIE-80GB", Count: 2}}}, "n")
	for i, bus := range []string{"00000000:3B:00.0", "00000000:5E:00.0"} {
		d := mockDevice(lib, i)
		d.GetNumaNodeIdFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
		d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
			var info nvml.PciInfo
			for j, c := range []byte(bus) {
				info.BusId[j] = int8(c)
			}
			return info, nvml.SUCCESS
		}
	}
	opts := defaultOptions()
	opts.sysfsRoot = root
	tr, err := NewTracker(lib, opts)
	if err != nil {
		t.Fatalf("NewTracker: %v", err)
	}
	defer tr.Shutdown()
	got := tr.GPUs()
	if got[0].NUMANode != 1 || got[1].NUMANode != UnknownNUMANode {
		t.Errorf("NUMA nodes %d, %d; want 1 (from sysfs) and %d (no sysfs entry)", got[0].NUMANode, got[1].NUMANode, UnknownNUMANode)
	}
}

func TestGPUsReturnsACopy(t *testing.T) {
	tr, err := NewTracker(newMock(t, config.MockNode{Machine: "dgxa100"}, "n"), defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	tr.GPUs()[0].Healthy = false
	if !tr.GPUs()[0].Healthy {
		t.Error("changing the slice GPUs returned changed the tracker's state")
	}
}
