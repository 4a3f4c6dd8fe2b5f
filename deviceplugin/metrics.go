package deviceplugin

import "github.com/prometheus/client_golang/prometheus"

// pluginMetrics count how allocations are resolved. They belong to one
// Plugin (no package-level registry); the node agent registers them with
// its /metrics handler through Collectors.
type pluginMetrics struct {
	resolved      prometheus.Counter
	waiting       prometheus.Gauge
	disagreements prometheus.Counter
}

func newPluginMetrics(node string) *pluginMetrics {
	// Hostname, like every node metric of the agent (dcgm-exporter's name).
	labels := prometheus.Labels{"Hostname": node}
	return &pluginMetrics{
		resolved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_node_allocations_resolved_total", ConstLabels: labels,
			Help: "GPU allocations whose container the kubelet's PodResources API named and whose limits (or refusal) were delivered.",
		}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessera_node_allocations_waiting", ConstLabels: labels,
			Help: "GPU allocations made by Allocate whose container the kubelet has not named yet; their containers cannot use CUDA until it does.",
		}),
		disagreements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_node_allocation_disagreements_total", ConstLabels: labels,
			Help: "Containers the kubelet gave GPUs their pod's assignment annotation does not name (a scheduler bug: alert on any increase).",
		}),
	}
}

// Collectors are the plugin's metrics, for the node agent's registry.
func (p *Plugin) Collectors() []prometheus.Collector {
	return []prometheus.Collector{p.metrics.resolved, p.metrics.waiting, p.metrics.disagreements}
}
