package gpu

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// DefaultEventWaitTimeout bounds one NVML EventSet Wait, and so how long Run
// takes to return after its context is done.
const DefaultEventWaitTimeout = time.Second

// UnknownNUMANode is the NUMANode of a GPU whose NUMA node the driver and
// sysfs do not report (sysfs itself says -1 for "no NUMA affinity").
const UnknownNUMANode = -1

// DefaultIgnoredXids returns the Xids that NVIDIA's k8s-device-plugin ignores
// because they report application errors, not GPU faults: 13 (graphics
// engine exception), 31 (GPU memory page fault), 43 (GPU stopped
// processing), 45 (preemptive cleanup), 68 (video processor exception), 109
// (context switch timeout).
func DefaultIgnoredXids() []uint64 { return []uint64{13, 31, 43, 45, 68, 109} }

// TrackerOptions configures a Tracker.
type TrackerOptions struct {
	// SplitCount is the slots each GPU offers (vgpu.GPU.Slots).
	SplitCount int
	// MemoryScaling multiplies physical memory into schedulable memory.
	MemoryScaling float64
	// Recovery is the quiet time after the last critical Xid before a GPU
	// is healthy again; 0 means never (until the agent restarts).
	Recovery time.Duration
	// ExtraIgnoredXids are ignored besides DefaultIgnoredXids.
	ExtraIgnoredXids []uint64
	// Clock drives the recovery timers; nil means the real clock.
	Clock clock.Clock
	// EventWaitTimeout bounds one NVML event wait; 0 means
	// DefaultEventWaitTimeout.
	EventWaitTimeout time.Duration

	// sysfsRoot replaces "/" when reading PCI NUMA nodes, for tests.
	sysfsRoot string
}

// TrackerOptionsFromConfig takes the tracker's settings from the node
// agent's configuration, with the real clock.
func TrackerOptionsFromConfig(n config.NodeAgent) TrackerOptions {
	return TrackerOptions{
		SplitCount:       n.SplitCount,
		MemoryScaling:    n.MemoryScaling,
		Recovery:         n.HealthRecovery.Duration,
		ExtraIgnoredXids: n.ExtraIgnoredXids,
	}
}

func (o TrackerOptions) validate() error {
	var errs []error
	if o.SplitCount < 1 || o.SplitCount > config.MaxSplitCount {
		errs = append(errs, fmt.Errorf("split count %d is outside 1-%d", o.SplitCount, config.MaxSplitCount))
	}
	if math.IsNaN(o.MemoryScaling) || math.IsInf(o.MemoryScaling, 0) || o.MemoryScaling <= 0 {
		errs = append(errs, fmt.Errorf("memory scaling %v is not a positive number", o.MemoryScaling))
	}
	if o.Recovery < 0 {
		errs = append(errs, fmt.Errorf("recovery %v is negative", o.Recovery))
	}
	if o.EventWaitTimeout < 0 || o.EventWaitTimeout > time.Duration(math.MaxUint32)*time.Millisecond {
		errs = append(errs, fmt.Errorf("event wait timeout %v is outside 0-%v", o.EventWaitTimeout, time.Duration(math.MaxUint32)*time.Millisecond))
	}
	return errors.Join(errs...)
}

// Tracker is a node's GPUs and their current health.
type Tracker struct {
	lib     nvml.Interface
	opts    TrackerOptions
	clock   clock.Clock
	ignored map[uint64]bool
	// devices[i] and uuids[i] are the NVML handle and UUID of gpus[i];
	// byUUID maps a UUID to i. They never change after discovery, so Run
	// reads them without the lock.
	devices []nvml.Device
	uuids   []string
	byUUID  map[string]int

	running      atomic.Bool
	shutdownOnce sync.Once

	mu          sync.Mutex
	gpus        []vgpu.GPU
	subscribers map[uint64]chan struct{}
	nextSubID   uint64

	// afterEvent, when set, is called by Run after it has handled each
	// result of an event wait (tests use it to know an event was seen).
	afterEvent func()
}

// NewTracker initialises NVML and discovers its GPUs. The caller must call
// Shutdown once it is done with the tracker (after Run has returned).
func NewTracker(lib nvml.Interface, opts TrackerOptions) (*Tracker, error) {
	if lib == nil {
		return nil, errors.New("new GPU tracker: no NVML library")
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("new GPU tracker: %w", err)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.EventWaitTimeout == 0 {
		opts.EventWaitTimeout = DefaultEventWaitTimeout
	}
	if opts.sysfsRoot == "" {
		opts.sysfsRoot = "/"
	}
	t := &Tracker{
		lib:         lib,
		opts:        opts,
		clock:       opts.Clock,
		ignored:     make(map[uint64]bool),
		byUUID:      make(map[string]int),
		subscribers: make(map[uint64]chan struct{}),
	}
	for _, xid := range append(DefaultIgnoredXids(), opts.ExtraIgnoredXids...) {
		t.ignored[xid] = true
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		if ret == nvml.ERROR_LIBRARY_NOT_FOUND {
			return nil, fmt.Errorf("initialize NVML (is the NVIDIA driver installed and libnvidia-ml.so.1 on the library path?): %w", ret)
		}
		return nil, fmt.Errorf("initialize NVML: %w", ret)
	}
	if err := t.discover(); err != nil {
		if ret := lib.Shutdown(); ret != nvml.SUCCESS {
			klog.ErrorS(ret, "Shut down NVML after failed GPU discovery")
		}
		return nil, err
	}
	klog.InfoS("Discovered GPUs", "count", len(t.gpus))
	return t, nil
}

func (t *Tracker) discover() error {
	count, ret := t.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("count GPUs: %w", ret)
	}
	for i := range count {
		dev, gpu, err := t.describe(i)
		if err != nil {
			return fmt.Errorf("discover GPU %d: %w", i, err)
		}
		if prev, dup := t.byUUID[gpu.UUID]; dup {
			return fmt.Errorf("discover GPU %d: UUID %s is also GPU %d's", i, gpu.UUID, t.gpus[prev].Index)
		}
		t.byUUID[gpu.UUID] = len(t.gpus)
		t.devices = append(t.devices, dev)
		t.uuids = append(t.uuids, gpu.UUID)
		t.gpus = append(t.gpus, gpu)
	}
	return nil
}

// describe reads one GPU's properties; i is its NVML enumeration index.
func (t *Tracker) describe(i int) (nvml.Device, vgpu.GPU, error) {
	dev, ret := t.lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return nil, vgpu.GPU{}, fmt.Errorf("get device handle: %w", ret)
	}
	uuid, ret := dev.GetUUID()
	if ret != nvml.SUCCESS {
		return nil, vgpu.GPU{}, fmt.Errorf("get UUID: %w", ret)
	}
	if uuid == "" {
		return nil, vgpu.GPU{}, errors.New("NVML reported an empty UUID")
	}
	name, ret := dev.GetName()
	if ret != nvml.SUCCESS {
		return nil, vgpu.GPU{}, fmt.Errorf("get model name of %s: %w", uuid, ret)
	}
	mem, ret := dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return nil, vgpu.GPU{}, fmt.Errorf("get memory info of %s: %w", uuid, ret)
	}
	index, ret := dev.GetIndex()
	if ret != nvml.SUCCESS {
		return nil, vgpu.GPU{}, fmt.Errorf("get index of %s: %w", uuid, ret)
	}
	numa, err := t.numaNode(dev, uuid)
	if err != nil {
		return nil, vgpu.GPU{}, err
	}
	return dev, vgpu.GPU{
		UUID:      uuid,
		Index:     index,
		Model:     name,
		MemoryMiB: scaleMemory(mem.Total>>20, t.opts.MemoryScaling),
		Slots:     t.opts.SplitCount,
		Cores:     vgpu.FullCores,
		NUMANode:  numa,
		Healthy:   true,
	}, nil
}

// numaNode asks the driver first and falls back to sysfs, the only source
// on drivers that predate nvmlDeviceGetNumaNodeId.
func (t *Tracker) numaNode(dev nvml.Device, uuid string) (int, error) {
	// Calling a symbol the loaded driver lacks aborts the process (it is
	// bound lazily), so look it up before calling it.
	if t.lib.Extensions().LookupSymbol("nvmlDeviceGetNumaNodeId") == nil {
		node, ret := dev.GetNumaNodeId()
		switch ret {
		case nvml.SUCCESS:
			return node, nil
		case nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_FUNCTION_NOT_FOUND:
		default:
			return 0, fmt.Errorf("get NUMA node of %s: %w", uuid, ret)
		}
	}
	pci, ret := dev.GetPciInfo()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("get PCI info of %s: %w", uuid, ret)
	}
	busID := sysfsBusID(pci.BusId)
	path := filepath.Join(t.opts.sysfsRoot, "sys/bus/pci/devices", busID, "numa_node")
	data, err := os.ReadFile(path)
	if err != nil {
		klog.InfoS("NUMA node of GPU unknown", "uuid", uuid, "busID", busID, "err", err)
		return UnknownNUMANode, nil
	}
	node, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		klog.InfoS("NUMA node of GPU unreadable", "uuid", uuid, "path", path, "err", err)
		return UnknownNUMANode, nil
	}
	return node, nil
}

// sysfsBusID turns NVML's "00000000:3B:00.0" into sysfs's "0000:3b:00.0".
func sysfsBusID(raw [32]int8) string {
	var b strings.Builder
	for _, c := range raw {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	id := strings.ToLower(b.String())
	if domain, rest, ok := strings.Cut(id, ":"); ok && len(domain) == 8 {
		id = domain[4:] + ":" + rest
	}
	return id
}

// scaleMemory is floor(mib × scaling) computed on the decimal the user
// wrote, so that 0.3 × 40960 is 12288 and not 12287 from binary rounding.
func scaleMemory(mib uint64, scaling float64) int64 {
	factor, ok := new(big.Rat).SetString(strconv.FormatFloat(scaling, 'g', -1, 64))
	if !ok {
		return int64(math.Floor(float64(mib) * scaling))
	}
	product := factor.Mul(factor, new(big.Rat).SetUint64(mib))
	return new(big.Int).Quo(product.Num(), product.Denom()).Int64()
}

// GPUs returns a copy of the GPUs with their current health, in NVML
// enumeration order.
func (t *Tracker) GPUs() []vgpu.GPU {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]vgpu.GPU(nil), t.gpus...)
}

// Subscribe returns a channel that receives a value whenever any GPU's health
// changes. Notifications coalesce: the channel holds at most one, so a slow
// reader sees one notification for several changes and reads the latest state
// with GPUs. The returned func unsubscribes; the channel is never closed.
func (t *Tracker) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	t.mu.Lock()
	id := t.nextSubID
	t.nextSubID++
	t.subscribers[id] = ch
	t.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			t.mu.Lock()
			delete(t.subscribers, id)
			t.mu.Unlock()
		})
	}
}

// setHealth sets the health of the GPUs at the given positions and reports
// whether any of them changed.
func (t *Tracker) setHealth(positions []int, healthy bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	for _, p := range positions {
		if t.gpus[p].Healthy != healthy {
			t.gpus[p].Healthy = healthy
			changed = true
		}
	}
	return changed
}

func (t *Tracker) notify() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range t.subscribers {
		select {
		case ch <- struct{}{}:
		default: // a notification is already pending: coalesce
		}
	}
}

// Shutdown releases NVML. Call it once Run has returned; later calls do
// nothing.
func (t *Tracker) Shutdown() {
	t.shutdownOnce.Do(func() {
		if ret := t.lib.Shutdown(); ret != nvml.SUCCESS {
			klog.ErrorS(ret, "Shut down NVML")
		}
	})
}
