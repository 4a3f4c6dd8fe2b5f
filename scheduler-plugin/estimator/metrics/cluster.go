package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// WaitingSource counts the member's pods waiting for vGPUs.
type WaitingSource interface {
	Count() int
}

// clusterCollector reports the member cluster's GPUs per model, the
// cluster-level counterpart of the node agents' per-GPU series: the names
// start with tessera_cluster_ where the node's start with tessera_gpu_, the
// units are the same (bytes; cores as a ratio of one whole GPU) and the
// model label is dcgm-exporter's modelName. Every series carries the
// cluster label (--cluster-name), so that a central Prometheus can sum the
// fleet by model without relabelling. The numbers are gpustate's
// ModelSummary, the same that `tessera fleet` prints: totals count every
// GPU, free amounts only healthy GPUs.
type clusterCollector struct {
	state   StateSource
	waiting WaitingSource

	nodes, gpus, gpusHealthy                *prometheus.Desc
	slotsCapacity, slotsFree                *prometheus.Desc
	memoryCapacity, memoryFree, largestFree *prometheus.Desc
	coresCapacity, coresFree, podsWaiting   *prometheus.Desc
}

func newClusterCollector(labels prometheus.Labels, state StateSource, waiting WaitingSource) *clusterCollector {
	model := []string{nodemetrics.LabelModelName}
	desc := func(name, help string, variable []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, variable, labels)
	}
	return &clusterCollector{
		state: state, waiting: waiting,
		nodes: desc("tessera_cluster_nodes",
			"Nodes of the member cluster with at least one GPU of the model.", model),
		gpus: desc("tessera_cluster_gpus",
			"GPUs of the model that the node agents publish, healthy or not.", model),
		gpusHealthy: desc("tessera_cluster_gpus_healthy",
			"GPUs of the model that are healthy and offered to pods.", model),
		slotsCapacity: desc("tessera_cluster_gpu_slots_capacity",
			"vGPU slots over all GPUs of the model.", model),
		slotsFree: desc("tessera_cluster_gpu_slots_free",
			"Free vGPU slots over healthy GPUs of the model.", model),
		memoryCapacity: desc("tessera_cluster_gpu_memory_capacity_bytes",
			"Schedulable GPU memory over all GPUs of the model, in bytes.", model),
		memoryFree: desc("tessera_cluster_gpu_memory_free_bytes",
			"Free schedulable GPU memory over healthy GPUs of the model, in bytes.", model),
		largestFree: desc("tessera_cluster_gpu_memory_largest_free_bytes",
			"The most memory free on one healthy GPU of the model that has a free slot: the largest share one more vGPU could get, in bytes. Far below the free memory means fragmentation.", model),
		coresCapacity: desc("tessera_cluster_gpu_cores_capacity_ratio",
			"GPU cores over all GPUs of the model, in whole GPUs (1 is one GPU's cores).", model),
		coresFree: desc("tessera_cluster_gpu_cores_free_ratio",
			"Free GPU cores over healthy GPUs of the model, in whole GPUs (1 is one GPU's cores).", model),
		podsWaiting: desc("tessera_cluster_pods_waiting",
			"Pods that ask for vGPUs and have neither a node nor a GPU assignment yet.", nil),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.nodes, c.gpus, c.gpusHealthy, c.slotsCapacity, c.slotsFree,
		c.memoryCapacity, c.memoryFree, c.largestFree, c.coresCapacity, c.coresFree, c.podsWaiting,
	} {
		ch <- d
	}
}

// Collect reads the snapshot's per-model summary, which the snapshot
// computes once: scrapes between two changes of the cluster cost a copy of
// a few numbers per model.
func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.state.Snapshot().Models() {
		c.model(ch, m)
	}
	ch <- prometheus.MustNewConstMetric(c.podsWaiting, prometheus.GaugeValue, float64(c.waiting.Count()))
}

func (c *clusterCollector) model(ch chan<- prometheus.Metric, m gpustate.ModelSummary) {
	send := func(d *prometheus.Desc, v float64) {
		// A model name is whatever NVML reported; one that Prometheus
		// refuses (invalid UTF-8) fails its own series, never the scrape.
		metric, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, m.Model)
		if err != nil {
			metric = prometheus.NewInvalidMetric(d, err)
		}
		ch <- metric
	}
	send(c.nodes, float64(m.Nodes))
	send(c.gpus, float64(m.GPUs))
	send(c.gpusHealthy, float64(m.HealthyGPUs))
	send(c.slotsCapacity, float64(m.Slots.Total))
	send(c.slotsFree, float64(m.Slots.Free))
	send(c.memoryCapacity, float64(m.MemoryMiB.Total)*bytesPerMiB)
	send(c.memoryFree, float64(m.MemoryMiB.Free)*bytesPerMiB)
	send(c.largestFree, float64(m.LargestFreeMiB)*bytesPerMiB)
	send(c.coresCapacity, float64(m.Cores.Total)/vgpu.FullCores)
	send(c.coresFree, float64(m.Cores.Free)/vgpu.FullCores)
}
