package nodemetrics

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// scrape is one Collect call: where series go and which problems it saw.
type scrape struct {
	c  *Collector
	ch chan<- prometheus.Metric
	// seen are the problem keys reported by this scrape.
	seen map[string]bool
}

// gauge sends one gauge. Label values come from annotations and the API;
// one that Prometheus refuses (invalid UTF-8) fails that series only, and
// never panics.
func (s *scrape) gauge(d *prometheus.Desc, v float64, labels ...string) {
	s.send(d, prometheus.GaugeValue, v, labels...)
}

func (s *scrape) send(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, fmt.Errorf("labels %q: %w", labels, err))
	}
	s.ch <- m
}

func (s *scrape) problem(key string, err error) {
	s.seen[key] = true
	s.c.problems.report(key, err)
}

// gpus sends the per-GPU series; allocated nil means the allocations are
// unknown and only capacity and health are sent.
func (s *scrape) gpus(gpus []vgpu.GPU, allocated map[string]allocation) {
	d := s.c.descs
	seen := make(map[string]bool, len(gpus))
	for _, g := range gpus {
		if seen[g.UUID] { // a GPU source must not list a GPU twice; never clash
			continue
		}
		seen[g.UUID] = true
		labels := []string{g.UUID, strconv.Itoa(g.Index), g.Model}
		s.gauge(d.gpuMemory, float64(g.MemoryMiB)*bytesPerMiB, labels...)
		s.gauge(d.gpuSlots, float64(g.Slots), labels...)
		s.gauge(d.gpuHealthy, gpuBoolean(g.Healthy), labels...)
		if allocated == nil {
			continue
		}
		a := allocated[g.UUID]
		s.gauge(d.gpuMemoryAllocated, a.memoryMiB*bytesPerMiB, labels...)
		s.gauge(d.gpuSlotsAllocated, float64(a.slots), labels...)
		s.gauge(d.gpuCoresAllocated, ratioOfGPU(a.cores), labels...)
	}
}

// container sends one container's series; it reports false when the
// container's region could not be read (its limits are still sent).
func (s *scrape) container(pod AssignedPod, ctr annotations.ContainerAssignment, info map[string]gpuInfo) bool {
	d := s.c.descs
	region, err := s.c.opts.Regions(pod.UID, ctr.Name)
	readable := err == nil || noRegionYet(err)
	if !readable {
		s.problem(fmt.Sprintf("region of container %s/%s/%s", pod.Namespace, pod.Name, ctr.Name), err)
	}
	if err != nil {
		region = RegionSnapshot{}
	}
	byUUID := make(map[string]RegionDevice, len(region.Devices))
	for _, rd := range region.Devices {
		if rd.UUID != "" {
			byUUID[rd.UUID] = rd
		}
	}
	for i, dev := range ctr.Devices {
		g := info[dev.UUID] // an unknown GPU leaves gpu and modelName empty
		labels := []string{pod.Namespace, pod.Name, ctr.Name, dev.UUID, g.index, g.model}
		s.gauge(d.ctrMemoryLimit, float64(dev.MemoryMiB)*bytesPerMiB, labels...)
		coreLimit := 1.0
		if dev.Cores > 0 {
			coreLimit = ratioOfGPU(dev.Cores)
		}
		s.gauge(d.ctrCoreLimit, coreLimit, labels...)
		if !readable {
			continue
		}
		use, ok := byUUID[dev.UUID]
		if !ok && i < len(region.Devices) && region.Devices[i].UUID == "" {
			use = region.Devices[i] // the hook recorded no UUID: match by ordinal
		}
		s.gauge(d.ctrMemoryUsed, float64(use.UsedBytes), labels...)
		s.send(d.ctrLaunches, prometheus.CounterValue, float64(use.KernelLaunches), labels...)
		s.send(d.ctrBusy, prometheus.CounterValue, use.BusySeconds, labels...)
	}
	if readable {
		s.gauge(d.ctrProcesses, float64(region.Processes), pod.Namespace, pod.Name, ctr.Name)
	}
	return readable
}

// problemLog logs each problem once while it lasts, instead of at every
// scrape: the first scrape that sees it (or sees it change) logs it, and a
// problem that went away may be logged again if it returns.
type problemLog struct {
	log  func(key string, err error)
	mu   sync.Mutex
	last map[string]string
}

func newProblemLog() *problemLog {
	return &problemLog{last: map[string]string{}, log: func(key string, err error) {
		klog.ErrorS(err, "Node metrics leave out part of the node's state", "object", key)
	}}
}

func (l *problemLog) report(key string, err error) {
	msg := err.Error()
	l.mu.Lock()
	changed := l.last[key] != msg
	l.last[key] = msg
	l.mu.Unlock()
	if changed {
		l.log(key, err)
	}
}

// retainOnly forgets the problems a scrape did not see.
func (l *problemLog) retainOnly(seen map[string]bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.last {
		if !seen[k] {
			delete(l.last, k)
		}
	}
}
