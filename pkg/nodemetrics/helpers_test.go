package nodemetrics

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

const testNode = "node-a"

// fakeGPUs is a GPUSource whose GPUs a test may change between scrapes.
type fakeGPUs struct {
	mu   sync.Mutex
	gpus []vgpu.GPU
}

func (f *fakeGPUs) GPUs() []vgpu.GPU {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]vgpu.GPU(nil), f.gpus...)
}

// fakePods is a PodSource whose pods a test may change between scrapes.
type fakePods struct {
	mu      sync.Mutex
	pods    []AssignedPod
	skipped []SkippedPod
	err     error
}

func (f *fakePods) AssignedPods() ([]AssignedPod, []SkippedPod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]AssignedPod(nil), f.pods...), append([]SkippedPod(nil), f.skipped...), f.err
}

func (f *fakePods) set(pods ...AssignedPod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = pods
}

// fakeRegions answers from a map keyed "podUID/container"; a missing key is
// a region file that does not exist.
type fakeRegions struct {
	mu      sync.Mutex
	regions map[string]RegionSnapshot
	errs    map[string]error
}

func (f *fakeRegions) read(podUID, container string) (RegionSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := podUID + "/" + container
	if err, ok := f.errs[key]; ok {
		return RegionSnapshot{}, err
	}
	r, ok := f.regions[key]
	if !ok {
		return RegionSnapshot{}, fmt.Errorf("open region of %s: %w", key, fs.ErrNotExist)
	}
	return r, nil
}

func gpuA100(i int, healthy bool) vgpu.GPU {
	return vgpu.GPU{UUID: fmt.Sprintf("GPU-a%d", i), Index: i, Model: "NVIDIA A100-SXM4-40GB",
		MemoryMiB: 40960, Slots: 10, Cores: 100, Healthy: healthy}
}

// device is one assigned device: slot 0 of the GPU with the given limits.
func device(uuid string, memMiB int64, cores int) annotations.AssignedDevice {
	return annotations.AssignedDevice{UUID: uuid, SlotID: vgpu.SlotID(uuid, 0), MemoryMiB: memMiB, Cores: cores}
}

func pod(ns, name, uid string, containers ...annotations.ContainerAssignment) AssignedPod {
	return AssignedPod{Namespace: ns, Name: name, UID: uid,
		Assignment: annotations.Assignment{Version: annotations.Version, Node: testNode, Containers: containers}}
}

func ctr(name string, devs ...annotations.AssignedDevice) annotations.ContainerAssignment {
	return annotations.ContainerAssignment{Name: name, Devices: devs}
}

// help is the exposition header of every metric, exactly as the collector
// writes it; expected texts are built from it so each case lists only series.
var help = map[string]string{
	"tessera_gpu_memory_capacity_bytes":        "Schedulable memory of the GPU: physical memory times the node's memory scaling factor.",
	"tessera_gpu_memory_allocated_bytes":       "GPU memory assigned to the containers of non-terminal pods on this node.",
	"tessera_gpu_slots_capacity":               "vGPU slots the GPU offers (the split count).",
	"tessera_gpu_slots_allocated":              "vGPU slots of the GPU assigned to containers.",
	"tessera_gpu_cores_allocated_ratio":        "Core caps assigned on the GPU, as a fraction of the whole GPU; containers without a cap count 0.",
	"tessera_gpu_healthy":                      "1 when the GPU is healthy and offered to pods, 0 after a critical Xid error.",
	"tessera_container_memory_limit_bytes":     "GPU memory limit of the container on this GPU.",
	"tessera_container_memory_used_bytes":      "GPU memory the container's processes hold on this GPU through the interception library; 0 before any process used it.",
	"tessera_container_core_limit_ratio":       "Core cap of the container on this GPU as a fraction of the GPU; 1 when the container has no cap.",
	"tessera_container_kernel_launches_total":  "Kernel launches the interception library paced for the container on this GPU, over its live processes.",
	"tessera_container_gpu_busy_seconds_total": "GPU time the interception library measured for the container's kernels on this GPU, over its live processes; only recorded under a core cap.",
	"tessera_container_processes":              "Processes of the container using its GPUs (holding memory or launching kernels), from its usage region.",
	"tessera_node_pods_skipped":                "Pods on this node whose GPU assignment is not reported, by reason.",
	"tessera_node_region_read_errors":          "Containers whose usage region could not be read at this scrape; their use is not reported.",
}

// exposition renders expected series, keyed by metric name, with their
// headers, and returns the names to compare (every name in series).
func exposition(t *testing.T, series map[string][]string) (string, []string) {
	t.Helper()
	names := make([]string, 0, len(series))
	for name := range series {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		h, ok := help[name]
		if !ok {
			t.Fatalf("no help text for %s", name)
		}
		typ := "gauge"
		if strings.HasSuffix(name, "_total") {
			typ = "counter"
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, h, name, typ)
		for _, s := range series[name] {
			b.WriteString(name + s + "\n")
		}
	}
	return b.String(), names
}
