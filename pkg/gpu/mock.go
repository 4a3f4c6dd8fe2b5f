package gpu

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxb200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh200"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
	"github.com/google/uuid"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// MaxMockGPUs bounds the GPUs of one mock node, so that a typo in a count
// cannot make the agent allocate millions of mock devices.
const MaxMockGPUs = 64

// mockEventQueue is how many injected events may wait for the tracker.
const mockEventQueue = 64

// mockMachines are the whole mock machines by configuration name.
func mockMachines() map[string]func() *server.Server {
	return map[string]func() *server.Server{
		"dgxa100": dgxa100.New,
		"dgxh100": dgxh100.New,
		"dgxh200": dgxh200.New,
		"dgxb200": dgxb200.New,
	}
}

// mockModels are go-nvml's mock GPU models by configuration name (the NVML
// name without "NVIDIA ", as in "A100-SXM4-40GB").
func mockModels() map[string]gpus.Config {
	return map[string]gpus.Config{
		"A100-SXM4-40GB":  gpus.A100_SXM4_40GB,
		"A100-SXM4-80GB":  gpus.A100_SXM4_80GB,
		"A100-PCIE-40GB":  gpus.A100_PCIE_40GB,
		"A100-PCIE-80GB":  gpus.A100_PCIE_80GB,
		"A30-PCIE-24GB":   gpus.A30_PCIE_24GB,
		"H100-SXM5-80GB":  gpus.H100_SXM5_80GB,
		"H200-SXM5-141GB": gpus.H200_SXM5_141GB,
		"B200-SXM5-180GB": gpus.B200_SXM5_180GB,
	}
}

// NewLibrary returns the NVML implementation the node configuration asks for:
// the real driver library for "nvml" (nothing is loaded until Init), or a
// *MockLibrary for "mock", whose GPU UUIDs derive from seed (use the node
// name, so that mock nodes of one cluster have distinct GPUs).
func NewLibrary(cfg config.NodeAgent, seed string) (nvml.Interface, error) {
	switch cfg.GPUBackend {
	case config.BackendNVML:
		return nvml.New(), nil
	case config.BackendMock:
		lib, err := NewMockLibrary(cfg.Mock, seed)
		if err != nil {
			return nil, err
		}
		return lib, nil
	}
	return nil, fmt.Errorf("GPU backend %q is neither %q nor %q", cfg.GPUBackend, config.BackendNVML, config.BackendMock)
}

// MockLibrary is a go-nvml mock server completed with everything the Tracker
// calls (NUMA nodes, event registration, a channel-backed EventSet) and with
// UUIDs that are stable for a seed. The embedded server's Devices are
// *server.Device, which tests may adjust (for example to fail a call).
type MockLibrary struct {
	*server.Server

	// events feeds every event set's Wait.
	events chan mockEvent

	mu       sync.Mutex
	openSets int
}

type mockEvent struct {
	data nvml.EventData
	ret  nvml.Return
}

// NewMockLibrary builds a mock node: either a whole machine ("dgxa100",
// "dgxh100", "dgxh200", "dgxb200") or a list of models with counts.
func NewMockLibrary(node config.MockNode, seed string) (*MockLibrary, error) {
	if seed == "" {
		return nil, errors.New("mock GPUs: the UUID seed (node name) is empty")
	}
	var srv *server.Server
	switch {
	case node.Machine != "" && len(node.GPUs) > 0:
		return nil, errors.New("mock GPUs: set machine or gpus, not both")
	case node.Machine != "":
		machines := mockMachines()
		build, ok := machines[strings.ToLower(node.Machine)]
		if !ok {
			return nil, fmt.Errorf("mock GPUs: unknown machine %q; valid machines: %s",
				node.Machine, strings.Join(slices.Sorted(maps.Keys(machines)), ", "))
		}
		srv = build()
	case len(node.GPUs) > 0:
		configs, err := mockGPUConfigs(node.GPUs)
		if err != nil {
			return nil, err
		}
		srv, err = server.New(server.WithGPUs(configs...),
			server.WithDriverVersion("550.54.15"),
			server.WithNVMLVersion("12.550.54.15"),
			server.WithCUDADriverVersion(12040))
		if err != nil {
			return nil, fmt.Errorf("mock GPUs: build mock server: %w", err)
		}
	default:
		return nil, errors.New("mock GPUs: set machine or gpus")
	}
	lib := &MockLibrary{Server: srv, events: make(chan mockEvent, mockEventQueue)}
	lib.complete(seed)
	return lib, nil
}

func mockGPUConfigs(list []config.MockGPU) ([]gpus.Config, error) {
	models := mockModels()
	var configs []gpus.Config
	for i, g := range list {
		// Accept "a100_sxm4_40gb" (go-nvml's variable name) and
		// "NVIDIA A100-SXM4-40GB" (NVML's) as well as the canonical name.
		name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(g.Model)), "NVIDIA ")
		name = strings.ReplaceAll(name, "_", "-")
		model, ok := models[name]
		if !ok {
			return nil, fmt.Errorf("mock GPUs: gpus[%d]: unknown model %q; valid models: %s",
				i, g.Model, strings.Join(slices.Sorted(maps.Keys(models)), ", "))
		}
		if g.Count < 1 || g.Count > MaxMockGPUs-len(configs) {
			return nil, fmt.Errorf("mock GPUs: gpus[%d]: count %d of %s would give 0 or more than %d GPUs", i, g.Count, g.Model, MaxMockGPUs)
		}
		configs = append(configs, gpus.Multiple(g.Count, model)...)
	}
	return configs, nil
}

// complete fills in what go-nvml's mock server leaves unset (its unset
// methods panic) and replaces its random UUIDs with seeded ones.
func (l *MockLibrary) complete(seed string) {
	// go-nvml gives every mock device a random UUID; a fixed namespace and
	// the seed make them stable across restarts and distinct across nodes.
	namespace := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://tessera.io/mock-gpu"))
	l.EventSetCreateFunc = l.createEventSet
	for i, d := range l.Devices {
		dev := d.(*server.Device)
		dev.UUID = "GPU-" + uuid.NewSHA1(namespace, []byte(seed+"/"+strconv.Itoa(i))).String()
		// Two sockets: the first half of the GPUs on NUMA node 0.
		numa := i * 2 / len(l.Devices)
		dev.GetNumaNodeIdFunc = func() (int, nvml.Return) { return numa, nvml.SUCCESS }
		const supported = nvml.EventTypeXidCriticalError | nvml.EventTypeSingleBitEccError | nvml.EventTypeDoubleBitEccError
		dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return supported, nvml.SUCCESS }
		dev.RegisterEventsFunc = func(mask uint64, set nvml.EventSet) nvml.Return {
			es, ok := set.(*mockEventSet)
			if !ok || es.lib != l {
				return nvml.ERROR_INVALID_ARGUMENT
			}
			if mask&^uint64(supported) != 0 {
				return nvml.ERROR_NOT_SUPPORTED
			}
			return es.register(dev, mask)
		}
	}
}

// InjectXid delivers a critical Xid event for the GPU with the given UUID to
// the event sets it is registered with, as the driver would; an empty uuid
// sends the "all devices" event that has no device handle. Events queue (up
// to 64) until a Wait takes them, so a test may inject before Run registers.
func (l *MockLibrary) InjectXid(gpuUUID string, xid uint64) error {
	var dev nvml.Device
	if gpuUUID != "" {
		for _, d := range l.Devices {
			if d.(*server.Device).UUID == gpuUUID {
				dev = d
			}
		}
		if dev == nil {
			return fmt.Errorf("inject Xid %d: no mock GPU has UUID %q", xid, gpuUUID)
		}
	}
	return l.enqueue(mockEvent{ret: nvml.SUCCESS, data: nvml.EventData{
		Device:            dev,
		EventType:         nvml.EventTypeXidCriticalError,
		EventData:         xid,
		GpuInstanceId:     0xFFFFFFFF, // not a MIG event
		ComputeInstanceId: 0xFFFFFFFF,
	}})
}

// injectWaitError makes the next Wait fail with ret, for tests.
func (l *MockLibrary) injectWaitError(ret nvml.Return) error {
	return l.enqueue(mockEvent{ret: ret})
}

func (l *MockLibrary) enqueue(e mockEvent) error {
	select {
	case l.events <- e:
		return nil
	default:
		return fmt.Errorf("inject NVML event: %d events already wait for the tracker", mockEventQueue)
	}
}

// openEventSets is how many event sets are created and not freed.
func (l *MockLibrary) openEventSets() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.openSets
}

// mockEventSet is an EventSet whose Wait reads the library's event queue,
// keeping the events of the devices registered with it. It implements
// nvml.EventSet itself rather than embedding go-nvml's moq mock, which
// records every call and would grow without bound in a long-running demo.
type mockEventSet struct {
	lib      *MockLibrary
	freed    chan struct{}
	freeOnce sync.Once

	mu    sync.Mutex
	masks map[nvml.Device]uint64
}

func (l *MockLibrary) createEventSet() (nvml.EventSet, nvml.Return) {
	es := &mockEventSet{lib: l, freed: make(chan struct{}), masks: make(map[nvml.Device]uint64)}
	l.mu.Lock()
	l.openSets++
	l.mu.Unlock()
	return es, nvml.SUCCESS
}

func (es *mockEventSet) register(dev nvml.Device, mask uint64) nvml.Return {
	es.mu.Lock()
	defer es.mu.Unlock()
	es.masks[dev] |= mask
	return nvml.SUCCESS
}

// wants reports whether an event reaches this set: one without a device
// reaches every set, one for a device only the sets it registered with.
func (es *mockEventSet) wants(e nvml.EventData) bool {
	if e.Device == nil {
		return true
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.masks[e.Device]&e.EventType != 0
}

// Wait honours the timeout like NVML: ERROR_TIMEOUT when no event came.
func (es *mockEventSet) Wait(timeoutMs uint32) (nvml.EventData, nvml.Return) {
	timer := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
	defer timer.Stop()
	for {
		// Checked alone first: select picks at random among ready cases, and
		// a freed set must not take events from the queue.
		select {
		case <-es.freed:
			return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
		default:
		}
		select {
		case <-es.freed:
			return nvml.EventData{}, nvml.ERROR_UNINITIALIZED
		case <-timer.C:
			return nvml.EventData{}, nvml.ERROR_TIMEOUT
		case e := <-es.lib.events:
			if e.ret != nvml.SUCCESS {
				return nvml.EventData{}, e.ret
			}
			if es.wants(e.data) {
				return e.data, nvml.SUCCESS
			}
			// The driver would never have queued it for this set.
		}
	}
}

// Free releases the set; a Wait in progress returns ERROR_UNINITIALIZED.
func (es *mockEventSet) Free() nvml.Return {
	es.freeOnce.Do(func() {
		close(es.freed)
		es.lib.mu.Lock()
		es.lib.openSets--
		es.lib.mu.Unlock()
	})
	return nvml.SUCCESS
}

// The operational-event API below is not used by Tessera.

func (es *mockEventSet) Wait_v3(uint32) (nvml.EventSetWaitData_v3, nvml.Return) {
	return nvml.EventSetWaitData_v3{}, nvml.ERROR_NOT_SUPPORTED
}

func (es *mockEventSet) GetContextCount_v1() (nvml.GetContextCount_v1, nvml.Return) {
	return nvml.GetContextCount_v1{}, nvml.ERROR_NOT_SUPPORTED
}

func (es *mockEventSet) GetContextData_v1(d nvml.GetContextData_v1) (nvml.GetContextData_v1, nvml.Return) {
	return d, nvml.ERROR_NOT_SUPPORTED
}

func (es *mockEventSet) GetContextInfo_v1(uint32) (nvml.GetContextInfo_v1, nvml.Return) {
	return nvml.GetContextInfo_v1{}, nvml.ERROR_NOT_SUPPORTED
}

func (es *mockEventSet) GetGpuOperationalEventContextLegacyXid_v1(uint32) (uint32, nvml.Return) {
	return 0, nvml.ERROR_NOT_SUPPORTED
}

func (es *mockEventSet) RegisterGpuOperationalEvents_v1(*nvml.GpuOperationalEventConfig_v1) nvml.Return {
	return nvml.ERROR_NOT_SUPPORTED
}

var _ nvml.EventSet = (*mockEventSet)(nil)
