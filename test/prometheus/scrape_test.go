// Package prometheus_test runs a real Prometheus (test/promtest) against the
// node agent's metrics endpoint (pkg/nodemetrics) on 127.0.0.1 and asks
// Prometheus's HTTP API for per-container series: what a dashboard would
// query.
package prometheus_test

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/test/promtest"
)

// scrapeInterval is short so that the test waits seconds, not minutes.
const scrapeInterval = "1s"

// node is the state the metrics endpoint serves; the test changes it.
type node struct {
	mu   sync.Mutex
	pods []nodemetrics.AssignedPod
}

func (n *node) GPUs() []vgpu.GPU {
	return []vgpu.GPU{{UUID: "GPU-0aa", Index: 0, Model: "NVIDIA H100 80GB HBM3", MemoryMiB: 81559, Slots: 10, Cores: 100, Healthy: true}}
}

func (n *node) AssignedPods() ([]nodemetrics.AssignedPod, []nodemetrics.SkippedPod, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]nodemetrics.AssignedPod(nil), n.pods...), nil, nil
}

func (n *node) setPods(pods ...nodemetrics.AssignedPod) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.pods = pods
}

// region: only uid-train has a region (its process runs); uid-idle has been
// allocated but has not started CUDA yet.
func region(podUID, container string) (nodemetrics.RegionSnapshot, error) {
	if podUID == "uid-train" && container == "main" {
		return nodemetrics.RegionSnapshot{Processes: 1, Devices: []nodemetrics.RegionDevice{
			{UUID: "GPU-0aa", UsedBytes: 3 << 30, KernelLaunches: 42},
		}}, nil
	}
	return nodemetrics.RegionSnapshot{}, fmt.Errorf("region of %s/%s: %w", podUID, container, fs.ErrNotExist)
}

func assignedPod(name, uid string, memMiB int64) nodemetrics.AssignedPod {
	return nodemetrics.AssignedPod{Namespace: "ml", Name: name, UID: uid, Assignment: annotations.Assignment{
		Version: annotations.Version, Node: "gpu-node-1",
		Containers: []annotations.ContainerAssignment{{Name: "main", Devices: []annotations.AssignedDevice{
			{UUID: "GPU-0aa", SlotID: vgpu.SlotID("GPU-0aa", 1), MemoryMiB: memMiB, Cores: 25},
		}}},
	}}
}

func TestPrometheusScrapesNodeMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the real Prometheus scrape test (it installs Debian's prometheus package with test/tools/install-prometheus.sh)")
	}
	promBin := promtest.Ensure(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	n := &node{}
	n.setPods(assignedPod("train-0", "uid-train", 8192), assignedPod("idle-0", "uid-idle", 4096))
	target := serveMetrics(ctx, t, n)
	api := startPrometheus(ctx, t, promBin, target)

	// A container that is using its GPU: the value the region holds.
	used := promtest.WaitForSeries(ctx, t, api, `tessera_container_memory_used_bytes{namespace="ml",pod="train-0",container="main"}`, true)
	if used.Value != strconv.Itoa(3<<30) {
		t.Errorf("memory used = %s, want %d", used.Value, 3<<30)
	}
	for label, want := range map[string]string{"UUID": "GPU-0aa", "gpu": "0", "modelName": "NVIDIA H100 80GB HBM3", "Hostname": "gpu-node-1", "job": "tessera-node"} {
		if used.Metric[label] != want {
			t.Errorf("label %s = %q, want %q (series %v)", label, used.Metric[label], want, used.Metric)
		}
	}
	// A container allocated but not started: its series exist already.
	limit := promtest.WaitForSeries(ctx, t, api, `tessera_container_memory_limit_bytes{pod="idle-0",container="main"}`, true)
	if limit.Value != strconv.Itoa(4096<<20) {
		t.Errorf("idle container's limit = %s, want %d", limit.Value, 4096<<20)
	}
	idleUse := promtest.WaitForSeries(ctx, t, api, `tessera_container_memory_used_bytes{pod="idle-0",container="main"}`, true)
	if idleUse.Value != "0" {
		t.Errorf("idle container's use = %s, want 0", idleUse.Value)
	}
	alloc := promtest.WaitForSeries(ctx, t, api, `tessera_gpu_memory_allocated_bytes{UUID="GPU-0aa"}`, true)
	if alloc.Value != strconv.Itoa((8192+4096)<<20) {
		t.Errorf("allocated = %s, want %d", alloc.Value, (8192+4096)<<20)
	}

	// The pod goes away: at the next scrape Prometheus marks its series
	// stale, and an instant query no longer returns them.
	n.setPods(assignedPod("train-0", "uid-train", 8192))
	promtest.WaitForSeries(ctx, t, api, `tessera_container_memory_limit_bytes{pod="idle-0"}`, false)
}

// serveMetrics serves the node's metrics on 127.0.0.1 until the test ends.
func serveMetrics(ctx context.Context, t *testing.T, n *node) string {
	t.Helper()
	c, err := nodemetrics.New(nodemetrics.Options{NodeName: "gpu-node-1", GPUs: n, Pods: n, Regions: region})
	if err != nil {
		t.Fatal(err)
	}
	handler, err := nodemetrics.NewHandler(c)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// startPrometheus runs Prometheus scraping target every scrapeInterval and
// returns its base URL.
func startPrometheus(ctx context.Context, t *testing.T, bin, target string) string {
	t.Helper()
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: tessera-node\n    honor_labels: true\n    static_configs:\n      - targets: [%q]\n",
		scrapeInterval, scrapeInterval, target)
	return promtest.Start(ctx, t, bin, cfg)
}
