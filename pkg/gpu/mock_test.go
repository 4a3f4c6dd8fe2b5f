package gpu

import (
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"github.com/tessera-gpu/tessera/pkg/config"
)

func TestNewLibrary(t *testing.T) {
	tests := []struct {
		name     string
		cfg      config.NodeAgent
		wantMock bool
		wantErr  string
	}{
		// nvml.New only records the library path: it must not fail (or
		// load anything) on a machine without a GPU.
		{"nvml", config.NodeAgent{GPUBackend: config.BackendNVML}, false, ""},
		{"mock", config.NodeAgent{GPUBackend: config.BackendMock, Mock: config.MockNode{Machine: "dgxa100"}}, true, ""},
		{"bad mock", config.NodeAgent{GPUBackend: config.BackendMock, Mock: config.MockNode{Machine: "dgx1"}}, false, "unknown machine"},
		{"unknown backend", config.NodeAgent{GPUBackend: "rocm"}, false, `GPU backend "rocm" is neither`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib, err := NewLibrary(tc.cfg, "node-a")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || lib != nil {
					t.Fatalf("NewLibrary = %v, %v; want nil and an error containing %q", lib, err, tc.wantErr)
				}
				return
			}
			if err != nil || lib == nil {
				t.Fatalf("NewLibrary = %v, %v", lib, err)
			}
			if _, isMock := lib.(*MockLibrary); isMock != tc.wantMock {
				t.Errorf("NewLibrary returned %T; want mock %v", lib, tc.wantMock)
			}
		})
	}
}

func TestNewMockLibraryErrors(t *testing.T) {
	tests := []struct {
		name string
		node config.MockNode
		seed string
		want []string // all in the error
	}{
		{"unknown machine", config.MockNode{Machine: "dgx2"}, "n", []string{`"dgx2"`, "dgxa100, dgxb200, dgxh100, dgxh200"}},
		{"unknown model", config.MockNode{GPUs: []config.MockGPU{{Model: "A100-SXM4-40GB", Count: 1}, {Model: "T4", Count: 1}}}, "n",
			[]string{`gpus[1]`, `"T4"`, "A100-PCIE-40GB", "H200-SXM5-141GB"}},
		{"zero count", config.MockNode{GPUs: []config.MockGPU{{Model: "A30-PCIE-24GB", Count: 0}}}, "n", []string{"count 0"}},
		{"too many", config.MockNode{GPUs: []config.MockGPU{{Model: "A30-PCIE-24GB", Count: 60}, {Model: "A30-PCIE-24GB", Count: 5}}}, "n",
			[]string{"gpus[1]", "more than 64"}},
		{"both", config.MockNode{Machine: "dgxa100", GPUs: []config.MockGPU{{Model: "A30-PCIE-24GB", Count: 1}}}, "n", []string{"not both"}},
		{"neither", config.MockNode{}, "n", []string{"set machine or gpus"}},
		{"no seed", config.MockNode{Machine: "dgxa100"}, "", []string{"seed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lib, err := NewMockLibrary(tc.node, tc.seed)
			if err == nil {
				t.Fatalf("NewMockLibrary succeeded with %d GPUs", len(lib.Devices))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMockEventSet(t *testing.T) {
	lib := newMock(t, config.MockNode{Machine: "dgxa100"}, "n")
	set, ret := lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		t.Fatalf("EventSetCreate: %v", ret)
	}
	registered, unregistered := mockDevice(lib, 0), mockDevice(lib, 1)
	if ret := registered.RegisterEvents(nvml.EventTypeXidCriticalError, set); ret != nvml.SUCCESS {
		t.Fatalf("RegisterEvents: %v", ret)
	}
	if ret := registered.RegisterEvents(nvml.EventTypeClock, set); ret != nvml.ERROR_NOT_SUPPORTED {
		t.Errorf("RegisterEvents of an unsupported type = %v, want ERROR_NOT_SUPPORTED", ret)
	}

	start := time.Now()
	if _, ret := set.Wait(30); ret != nvml.ERROR_TIMEOUT {
		t.Errorf("Wait with no event = %v, want ERROR_TIMEOUT", ret)
	}
	if elapsed := time.Since(start); elapsed < 30*time.Millisecond {
		t.Errorf("Wait(30ms) returned after %v", elapsed)
	}

	// The unregistered GPU's event never reaches the set; the next one does.
	for _, d := range []struct {
		uuid string
		xid  uint64
	}{{unregistered.UUID, 48}, {registered.UUID, 79}, {"", 92}} {
		if err := lib.InjectXid(d.uuid, d.xid); err != nil {
			t.Fatalf("InjectXid(%q, %d): %v", d.uuid, d.xid, err)
		}
	}
	e, ret := set.Wait(1000)
	if ret != nvml.SUCCESS || e.Device != registered || e.EventType != nvml.EventTypeXidCriticalError || e.EventData != 79 {
		t.Errorf("Wait = %+v, %v; want Xid 79 on the registered GPU", e, ret)
	}
	if e, ret := set.Wait(1000); ret != nvml.SUCCESS || e.Device != nil || e.EventData != 92 {
		t.Errorf("Wait = %+v, %v; want the all-devices Xid 92", e, ret)
	}

	if err := lib.InjectXid("GPU-nope", 79); err == nil || !strings.Contains(err.Error(), `"GPU-nope"`) {
		t.Errorf("InjectXid of an unknown UUID: %v", err)
	}
	for range mockEventQueue {
		if err := lib.InjectXid(registered.UUID, 79); err != nil {
			t.Fatalf("InjectXid within the queue: %v", err)
		}
	}
	if err := lib.InjectXid(registered.UUID, 79); err == nil {
		t.Error("InjectXid past the queue's capacity succeeded")
	}

	if lib.openEventSets() != 1 {
		t.Errorf("open event sets %d, want 1", lib.openEventSets())
	}
	set.Free()
	set.Free()
	if lib.openEventSets() != 0 {
		t.Errorf("open event sets after Free %d, want 0", lib.openEventSets())
	}
	if _, ret := set.Wait(1000); ret != nvml.ERROR_UNINITIALIZED {
		t.Errorf("Wait on a freed set = %v, want ERROR_UNINITIALIZED", ret)
	}
}

// FuzzNewMockLibrary feeds arbitrary mock node settings (they come from the
// config file): they must give either an error or a sane node, never a panic.
func FuzzNewMockLibrary(f *testing.F) {
	f.Add("dgxa100", "", 0, "n")
	f.Add("", "A100-SXM4-40GB", 3, "node-1")
	f.Add("", "nvidia h200_sxm5_141gb", 64, "x")
	f.Add("DGXB200", "", 0, "")
	f.Add("", "B200", -1, "n")
	f.Fuzz(func(t *testing.T, machine, model string, count int, seed string) {
		node := config.MockNode{Machine: machine}
		if model != "" {
			node.GPUs = []config.MockGPU{{Model: model, Count: count}}
		}
		lib, err := NewMockLibrary(node, seed)
		if err != nil {
			return
		}
		if n := len(lib.Devices); n < 1 || n > MaxMockGPUs {
			t.Fatalf("mock node has %d GPUs", n)
		}
		tr, err := NewTracker(lib, defaultOptions())
		if err != nil {
			t.Fatalf("NewTracker on a valid mock node: %v", err)
		}
		tr.Shutdown()
	})
}
