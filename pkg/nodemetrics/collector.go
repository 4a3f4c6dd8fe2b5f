package nodemetrics

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Namespace prefixes every metric name.
const Namespace = "tessera"

const bytesPerMiB = 1 << 20

// Label names, spelt as dcgm-exporter spells them.
const (
	LabelHostname  = "Hostname"
	LabelUUID      = "UUID"
	LabelGPU       = "gpu"
	LabelModelName = "modelName"
	LabelNamespace = "namespace"
	LabelPod       = "pod"
	LabelContainer = "container"
	LabelReason    = "reason"
)

// Options are the collector's inputs.
type Options struct {
	// NodeName is the value of the Hostname label.
	NodeName string
	GPUs     GPUSource
	Pods     PodSource
	Regions  RegionReader
}

// Collector is a prometheus.Collector for one node. It keeps no copy of the
// state it reports: each Collect reads the sources afresh.
type Collector struct {
	opts     Options
	descs    descriptors
	problems *problemLog
}

type descriptors struct {
	gpuMemory, gpuMemoryAllocated, gpuSlots, gpuSlotsAllocated *prometheus.Desc
	gpuCoresAllocated, gpuHealthy                              *prometheus.Desc

	ctrMemoryLimit, ctrMemoryUsed, ctrCoreLimit, ctrLaunches *prometheus.Desc
	ctrBusy, ctrProcesses                                    *prometheus.Desc

	podsSkipped, regionReadErrors *prometheus.Desc
}

func newDescriptors(node string) descriptors {
	constLabels := prometheus.Labels{LabelHostname: node}
	gpuLabels := []string{LabelUUID, LabelGPU, LabelModelName}
	ctrLabels := []string{LabelNamespace, LabelPod, LabelContainer}
	ctrGPULabels := append(append([]string{}, ctrLabels...), gpuLabels...)
	desc := func(name, help string, variable []string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, variable, constLabels)
	}
	return descriptors{
		gpuMemory: desc("gpu_memory_capacity_bytes",
			"Schedulable memory of the GPU: physical memory times the node's memory scaling factor.", gpuLabels),
		gpuMemoryAllocated: desc("gpu_memory_allocated_bytes",
			"GPU memory assigned to the containers of non-terminal pods on this node.", gpuLabels),
		gpuSlots: desc("gpu_slots_capacity",
			"vGPU slots the GPU offers (the split count).", gpuLabels),
		gpuSlotsAllocated: desc("gpu_slots_allocated",
			"vGPU slots of the GPU assigned to containers.", gpuLabels),
		gpuCoresAllocated: desc("gpu_cores_allocated_ratio",
			"Core caps assigned on the GPU, as a fraction of the whole GPU; containers without a cap count 0.", gpuLabels),
		gpuHealthy: desc("gpu_healthy",
			"1 when the GPU is healthy and offered to pods, 0 after a critical Xid error.", gpuLabels),
		ctrMemoryLimit: desc("container_memory_limit_bytes",
			"GPU memory limit of the container on this GPU.", ctrGPULabels),
		ctrMemoryUsed: desc("container_memory_used_bytes",
			"GPU memory the container's processes hold on this GPU through the interception library; 0 before any process used it.", ctrGPULabels),
		ctrCoreLimit: desc("container_core_limit_ratio",
			"Core cap of the container on this GPU as a fraction of the GPU; 1 when the container has no cap.", ctrGPULabels),
		ctrLaunches: desc("container_kernel_launches_total",
			"Kernel launches the interception library paced for the container on this GPU, over its live processes.", ctrGPULabels),
		// In seconds of one whole GPU, so that rate() is the share of the GPU
		// the container used, on the scale of container_core_limit_ratio.
		ctrBusy: desc("container_gpu_busy_seconds_total",
			"GPU time the interception library measured for the container's kernels on this GPU, over its live processes; only recorded under a core cap.", ctrGPULabels),
		ctrProcesses: desc("container_processes",
			"Processes of the container using its GPUs (holding memory or launching kernels), from its usage region.", ctrLabels),
		podsSkipped: desc("node_pods_skipped",
			"Pods on this node whose GPU assignment is not reported, by reason.", []string{LabelReason}),
		regionReadErrors: desc("node_region_read_errors",
			"Containers whose usage region could not be read at this scrape; their use is not reported.", nil),
	}
}

func (d descriptors) all() []*prometheus.Desc {
	return []*prometheus.Desc{
		d.gpuMemory, d.gpuMemoryAllocated, d.gpuSlots, d.gpuSlotsAllocated, d.gpuCoresAllocated, d.gpuHealthy,
		d.ctrMemoryLimit, d.ctrMemoryUsed, d.ctrCoreLimit, d.ctrLaunches, d.ctrBusy, d.ctrProcesses,
		d.podsSkipped, d.regionReadErrors,
	}
}

// New checks the options and returns the collector.
func New(opts Options) (*Collector, error) {
	var errs []error
	if opts.NodeName == "" {
		errs = append(errs, errors.New("no node name"))
	}
	if opts.GPUs == nil || opts.Pods == nil || opts.Regions == nil {
		errs = append(errs, errors.New("the GPU source, pod source and region reader must all be set"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("create node metrics collector: %w", err)
	}
	return &Collector{opts: opts, descs: newDescriptors(opts.NodeName), problems: newProblemLog()}, nil
}

// Describe sends every descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs.all() {
		ch <- d
	}
}

// gpuInfo is what the container series need to know about a GPU.
type gpuInfo struct {
	index string
	model string
}

// allocation sums what containers hold on one GPU. Memory is summed as a
// float so that absurd annotation values saturate instead of wrapping.
type allocation struct {
	memoryMiB float64
	slots     int
	cores     int
}

// Collect reads the sources and sends every series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	scrape := &scrape{c: c, ch: ch, seen: map[string]bool{}}
	defer c.problems.retainOnly(scrape.seen)

	gpus := c.opts.GPUs.GPUs()
	info := make(map[string]gpuInfo, len(gpus))
	for _, g := range gpus {
		info[g.UUID] = gpuInfo{index: strconv.Itoa(g.Index), model: g.Model}
	}
	pods, skipped, err := c.opts.Pods.AssignedPods()
	if err != nil {
		// Without the pods, allocations and containers are unknown: the
		// scrape reports the error (an invalid metric) and still serves
		// capacity and health, which do not depend on pods.
		scrape.problem("pod source", err)
		ch <- prometheus.NewInvalidMetric(c.descs.gpuMemoryAllocated, err)
		scrape.gpus(gpus, nil)
		return
	}
	pods, invalid := checkPods(pods)
	skipped = append(skipped, invalid...)
	skipCounts := make(map[string]int)
	for _, s := range skipped {
		skipCounts[s.Reason]++
		scrape.problem("pod "+s.Pod, fmt.Errorf("%s: %w", s.Reason, s.Err))
	}

	allocated := make(map[string]allocation, len(gpus))
	regionErrors := 0
	for _, pod := range pods {
		for _, ctr := range pod.Assignment.Containers {
			for _, d := range ctr.Devices {
				a := allocated[d.UUID]
				a.memoryMiB += float64(d.MemoryMiB)
				a.slots++
				a.cores += d.Cores
				allocated[d.UUID] = a
			}
			if !scrape.container(pod, ctr, info) {
				regionErrors++
			}
		}
	}
	scrape.gpus(gpus, allocated)
	for _, reason := range skipReasons() {
		scrape.gauge(c.descs.podsSkipped, float64(skipCounts[reason]), reason)
	}
	scrape.gauge(c.descs.regionReadErrors, float64(regionErrors))
}

// checkPods drops pods that would produce clashing series: a pod listed
// twice, or an assignment that names a container twice (the codec does not
// forbid it, and the registry would fail the whole scrape on the clash).
func checkPods(pods []AssignedPod) (kept []AssignedPod, skipped []SkippedPod) {
	seenPods := make(map[string]bool, len(pods))
	for _, p := range pods {
		name := p.Namespace + "/" + p.Name
		if seenPods[name] || seenPods["uid:"+p.UID] {
			skipped = append(skipped, SkippedPod{Pod: name, Reason: SkipDuplicatePod, Err: fmt.Errorf("pod UID %s is listed twice", p.UID)})
			continue
		}
		seenPods[name], seenPods["uid:"+p.UID] = true, true
		if dup, ok := repeatedContainer(p); ok {
			skipped = append(skipped, SkippedPod{Pod: name, Reason: SkipInvalidAssignment, Err: fmt.Errorf("the assignment names container %q twice", dup)})
			continue
		}
		kept = append(kept, p)
	}
	return kept, skipped
}

func repeatedContainer(p AssignedPod) (string, bool) {
	seen := make(map[string]bool, len(p.Assignment.Containers))
	for _, c := range p.Assignment.Containers {
		if seen[c.Name] {
			return c.Name, true
		}
		seen[c.Name] = true
	}
	return "", false
}

// gpuBoolean renders health as a gauge value.
func gpuBoolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// ratioOfGPU turns a percent of one GPU into a ratio.
func ratioOfGPU(percent int) float64 { return float64(percent) / vgpu.FullCores }
