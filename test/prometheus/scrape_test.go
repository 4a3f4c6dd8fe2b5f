// Package prometheus_test runs a real Prometheus against the node agent's
// metrics endpoint (pkg/nodemetrics) on 127.0.0.1 and asks Prometheus's HTTP
// API for per-container series: what a dashboard would query.
package prometheus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
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
	promBin := ensurePrometheus(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	n := &node{}
	n.setPods(assignedPod("train-0", "uid-train", 8192), assignedPod("idle-0", "uid-idle", 4096))
	target := serveMetrics(ctx, t, n)
	api := startPrometheus(ctx, t, promBin, target)

	// A container that is using its GPU: the value the region holds.
	used := waitForSeries(ctx, t, api, `tessera_container_memory_used_bytes{namespace="ml",pod="train-0",container="main"}`, true)
	if used.Value != strconv.Itoa(3<<30) {
		t.Errorf("memory used = %s, want %d", used.Value, 3<<30)
	}
	for label, want := range map[string]string{"UUID": "GPU-0aa", "gpu": "0", "modelName": "NVIDIA H100 80GB HBM3", "Hostname": "gpu-node-1", "job": "tessera-node"} {
		if used.Metric[label] != want {
			t.Errorf("label %s = %q, want %q (series %v)", label, used.Metric[label], want, used.Metric)
		}
	}
	// A container allocated but not started: its series exist already.
	limit := waitForSeries(ctx, t, api, `tessera_container_memory_limit_bytes{pod="idle-0",container="main"}`, true)
	if limit.Value != strconv.Itoa(4096<<20) {
		t.Errorf("idle container's limit = %s, want %d", limit.Value, 4096<<20)
	}
	idleUse := waitForSeries(ctx, t, api, `tessera_container_memory_used_bytes{pod="idle-0",container="main"}`, true)
	if idleUse.Value != "0" {
		t.Errorf("idle container's use = %s, want 0", idleUse.Value)
	}
	alloc := waitForSeries(ctx, t, api, `tessera_gpu_memory_allocated_bytes{UUID="GPU-0aa"}`, true)
	if alloc.Value != strconv.Itoa((8192+4096)<<20) {
		t.Errorf("allocated = %s, want %d", alloc.Value, (8192+4096)<<20)
	}

	// The pod goes away: at the next scrape Prometheus marks its series
	// stale, and an instant query no longer returns them.
	n.setPods(assignedPod("train-0", "uid-train", 8192))
	waitForSeries(ctx, t, api, `tessera_container_memory_limit_bytes{pod="idle-0"}`, false)
}

// ensurePrometheus returns the prometheus binary, installing Debian's
// package through test/tools/install-prometheus.sh when it is missing.
func ensurePrometheus(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "tools", "install-prometheus.sh")
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		t.Fatalf("prometheus is not installed and %s failed (run it as root, or test with -short to skip): %v\n%s", script, err, out)
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("%s succeeded but prometheus is not on PATH: %v", script, err)
	}
	return p
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

// startPrometheus runs Prometheus on a free loopback port with its own
// storage, scraping target, and returns its base URL. It is killed when
// the test ends.
func startPrometheus(ctx context.Context, t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n  - job_name: tessera-node\n    honor_labels: true\n    static_configs:\n      - targets: [%q]\n",
		scrapeInterval, scrapeInterval, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(ctx, t)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // only the process this test started
		<-exited
		_ = logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("prometheus log:\n%s", log)
			}
		}
	})
	base := "http://" + addr
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("prometheus exited: %v\n%s", err, log)
		case <-ctx.Done():
			t.Fatalf("prometheus on %s never became ready: %v", addr, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err := get(ctx, base+"/-/ready"); err == nil && resp == http.StatusOK {
			return base
		}
	}
}

// freeLoopbackAddr picks a free port on 127.0.0.1 for Prometheus to take.
func freeLoopbackAddr(ctx context.Context, t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func get(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// sample is one series of an instant vector.
type sample struct {
	Metric map[string]string
	Value  string
}

// waitForSeries polls an instant query until it returns exactly one series
// (present) or none (absent).
func waitForSeries(ctx context.Context, t *testing.T, api, query string, present bool) sample {
	t.Helper()
	var last []sample
	var lastErr error
	for {
		last, lastErr = instantQuery(ctx, api, query)
		switch {
		case lastErr == nil && present && len(last) == 1:
			return last[0]
		case lastErr == nil && !present && len(last) == 0:
			return sample{}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("query %s: want present=%v, last answer %+v (error %v)", query, present, last, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func instantQuery(ctx context.Context, api, query string) ([]sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/query?query="+url.QueryEscape(query), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode answer to %s: %w", query, err)
	}
	if body.Status != "success" || body.Data.ResultType != "vector" {
		return nil, errors.New("query " + query + ": " + body.Status + " " + body.Error)
	}
	var out []sample
	for _, r := range body.Data.Result {
		v, _ := r.Value[1].(string)
		out = append(out, sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}
