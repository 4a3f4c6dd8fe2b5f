// Package metrics is the Tessera estimator's Prometheus metrics: the free
// GPU capacity of the member cluster as the estimator sees it, how stale
// that view is, what it had to skip, and how long each RPC takes; and the
// cluster's GPUs per model (tessera_cluster_*, cluster.go), which a central
// Prometheus sums over the fleet.
package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

// Namespace prefixes every metric name.
const Namespace = "tessera_estimator"

const bytesPerMiB = 1 << 20

// StateSource yields the GPU state the gauges describe.
type StateSource interface {
	Snapshot() *gpucache.Snapshot
}

// AgeSource tells how long ago the cached state was last known current.
type AgeSource interface {
	Age() time.Duration
}

// Metrics owns a registry with every Tessera estimator metric. Gauges are
// computed from the GPU cache when scraped, so they are never staler than
// the cache itself and cost nothing between scrapes.
type Metrics struct {
	registry        *prometheus.Registry
	requestDuration *prometheus.HistogramVec
	setSearchBudget prometheus.Counter
}

// New registers the metrics for one member cluster; cluster is the value of
// every series' cluster label.
func New(cluster string, state StateSource, age AgeSource, waiting WaitingSource) (*Metrics, error) {
	labels := prometheus.Labels{"cluster": cluster}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace:   Namespace,
			Name:        "request_duration_seconds",
			Help:        "Time to answer one Estimator RPC, by RPC and gRPC status code.",
			ConstLabels: labels,
			Buckets:     prometheus.ExponentialBuckets(0.0001, 2, 16), // 0.1 ms to ~3.3 s
		}, []string{"rpc", "code"}),
		setSearchBudget: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace:   Namespace,
			Name:        "component_set_search_budget_exhausted_total",
			Help:        "MaxAvailableComponentSets answers whose exact search ran out of its step budget; each answered a proven lower bound, possibly below what fits.",
			ConstLabels: labels,
		}),
	}
	collectors := []prometheus.Collector{
		m.requestDuration,
		m.setSearchBudget,
		newStateCollector(labels, state),
		newClusterCollector(labels, state, waiting),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace:   Namespace,
			Name:        "snapshot_age_seconds",
			Help:        "Seconds since the member cluster's API server last answered; the estimator answers from this old a state.",
			ConstLabels: labels,
		}, func() float64 { return age.Age().Seconds() }),
	}
	for _, c := range collectors {
		if err := m.registry.Register(c); err != nil {
			return nil, fmt.Errorf("register estimator metrics: %w", err)
		}
	}
	return m, nil
}

// Registry is what the metrics endpoint serves.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// SetSearchBudgetExhausted is the counter the estimator plugin increments
// when a component-set answer is a lower bound only.
func (m *Metrics) SetSearchBudgetExhausted() prometheus.Counter { return m.setSearchBudget }

// ObserveRequest records one RPC's latency.
func (m *Metrics) ObserveRequest(rpc string, code codes.Code, d time.Duration) {
	m.requestDuration.WithLabelValues(rpc, code.String()).Observe(d.Seconds())
}

// stateCollector reports the GPU cache's summary at scrape time.
type stateCollector struct {
	state                                     StateSource
	freeSlots, freeMemory, freeCores, largest *prometheus.Desc
	nodes, nodesSkipped, podsSkipped          *prometheus.Desc
}

func newStateCollector(labels prometheus.Labels, state StateSource) *stateCollector {
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, variable, labels)
	}
	return &stateCollector{
		state:      state,
		freeSlots:  desc("free_vgpu_slots", "Free vGPU slots over healthy GPUs."),
		freeMemory: desc("free_gpu_memory_bytes", "Free schedulable GPU memory over healthy GPUs, in bytes."),
		freeCores:  desc("free_vgpu_cores", "Free GPU cores over healthy GPUs, in the vgpu-cores resource's unit (percent of one GPU: 100 is a whole GPU)."),
		largest: desc("largest_placeable_vgpu_memory_bytes",
			"Per GPU model, the largest memory share one more vGPU could get on a single healthy GPU with a free slot, in bytes.", "model"),
		nodes:        desc("nodes", "Nodes in the estimator's GPU view."),
		nodesSkipped: desc("nodes_skipped", "Nodes counted as having no GPUs because their data could not be read.", "reason"),
		podsSkipped:  desc("pods_skipped", "Pods whose GPU assignment could not be read and counts as using nothing.", "reason"),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.freeSlots, c.freeMemory, c.freeCores, c.largest, c.nodes, c.nodesSkipped, c.podsSkipped} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.state.Snapshot().Summary()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.freeSlots, float64(s.FreeSlots))
	gauge(c.freeMemory, float64(s.FreeMemoryMiB)*bytesPerMiB)
	gauge(c.freeCores, float64(s.FreeCores))
	for model, mib := range s.LargestPlaceableMiB {
		gauge(c.largest, float64(mib)*bytesPerMiB, model)
	}
	gauge(c.nodes, float64(s.Nodes))
	gauge(c.nodesSkipped, float64(s.NodesWithBadInventory), "undecodable_inventory")
	gauge(c.podsSkipped, float64(s.PodsWithBadAssignment), "undecodable_assignment")
}
