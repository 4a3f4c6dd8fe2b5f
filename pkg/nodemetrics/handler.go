package nodemetrics

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewHandler returns the /metrics handler of the node agent: the collector
// plus Go runtime and process metrics, in a registry of its own (no global
// registry). A series that fails is left out and the rest is still served,
// so one bad annotation never blanks a node's metrics. extra are the node
// agent's other metrics (the device plugin's).
func NewHandler(c *Collector, extra ...prometheus.Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	for _, col := range append([]prometheus.Collector{
		c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, extra...) {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("register node metrics: %w", err)
		}
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // promhttp's own error counters go in the same registry
	}), nil
}
