package extender

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Bind results, the values of the binds_total "result" label.
const (
	BindSucceeded = "success"
	// BindUnfit: the pod no longer fits the node (another bind took the room).
	BindUnfit = "unfit"
	// BindInvalid: the pod's request, options or the bind call are unusable.
	BindInvalid = "invalid"
	// BindAPIError: writing the annotation or the Binding failed.
	BindAPIError = "api_error"
	// BindNotLeader: this replica does not hold the lease.
	BindNotLeader = "not_leader"
)

// Metrics are the extender's Prometheus metrics. A nil *Metrics records
// nothing, so tests and tools need not register anything.
type Metrics struct {
	filterSeconds     prometheus.Histogram
	prioritizeSeconds prometheus.Histogram
	bindSeconds       prometheus.Histogram
	binds             *prometheus.CounterVec
	inflight          prometheus.Gauge
	bindConflicts     prometheus.Counter
	bindWaits         *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (a registry
// owned by the caller: the extender uses no global registry).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	// Filter and bind take from tens of microseconds (cached state, fake
	// API) to around a second (a slow API server), hence the wide buckets.
	buckets := prometheus.ExponentialBuckets(0.0001, 2.5, 12)
	m := &Metrics{
		filterSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_extender_filter_duration_seconds",
			Help:    "Time to answer one filter call, over all its candidate nodes.",
			Buckets: buckets,
		}),
		prioritizeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_extender_prioritize_duration_seconds",
			Help:    "Time to answer one prioritize call.",
			Buckets: buckets,
		}),
		bindSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_extender_bind_duration_seconds",
			Help:    "Time to answer one bind call: GPU choice, assignment patch and Binding.",
			Buckets: buckets,
		}),
		binds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_extender_binds_total",
			Help: "Bind calls answered, by result (success, unfit, invalid, api_error, not_leader).",
		}, []string{"result"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessera_extender_inflight_assignments",
			Help: "Assignments written or being written whose pods the informer has not shown with them yet.",
		}),
		bindConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_extender_bind_conflicts_total",
			Help: "Binds refused as unfit on a node that the pod's own filter had passed: another bind took the room between the two; kube-scheduler retries the pod after its backoff.",
		}),
		bindWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_extender_filter_bind_waits_total",
			Help: "Filter calls that waited for the binds of pods filtered before them, by how the wait ended (arrived, timed_out, canceled).",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{m.filterSeconds, m.prioritizeSeconds, m.bindSeconds, m.binds, m.inflight, m.bindConflicts, m.bindWaits} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register scheduler extender metrics: %w", err)
		}
	}
	for _, r := range []string{BindSucceeded, BindUnfit, BindInvalid, BindAPIError, BindNotLeader} {
		m.binds.WithLabelValues(r) // every result exists from the start, at 0
	}
	for _, r := range []string{WaitArrived, WaitTimedOut, WaitCanceled} {
		m.bindWaits.WithLabelValues(r)
	}
	return m, nil
}

func (m *Metrics) observeFilter(start time.Time) {
	if m != nil {
		m.filterSeconds.Observe(time.Since(start).Seconds())
	}
}

func (m *Metrics) observePrioritize(start time.Time) {
	if m != nil {
		m.prioritizeSeconds.Observe(time.Since(start).Seconds())
	}
}

func (m *Metrics) observeBind(start time.Time, result string) {
	if m != nil {
		m.bindSeconds.Observe(time.Since(start).Seconds())
		m.binds.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) setInflight(n int) {
	if m != nil {
		m.inflight.Set(float64(n))
	}
}

func (m *Metrics) observeBindConflict() {
	if m != nil {
		m.bindConflicts.Inc()
	}
}

// observeBindWait counts a filter's wait; result "" (nothing to wait for)
// is not counted.
func (m *Metrics) observeBindWait(result string) {
	if m != nil && result != "" {
		m.bindWaits.WithLabelValues(result).Inc()
	}
}
