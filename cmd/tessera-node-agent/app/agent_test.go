package app

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/gpu"
)

const testNode = "gpu-node-1"

// testSetup is a mock node: two mock A100s, a fake kubelet in a short temp
// dir (unix socket paths are limited to 108 bytes) and a fake API server
// holding the Node.
type testSetup struct {
	cfg     config.Config
	opts    *options.Options
	client  *fake.Clientset
	lib     *gpu.MockLibrary
	kubelet *fakekubelet.Kubelet
}

func newTestSetup(t *testing.T) *testSetup {
	t.Helper()
	dir, err := os.MkdirTemp("", "tna")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.Node.GPUBackend = config.BackendMock
	cfg.Node.Mock = config.MockNode{GPUs: []config.MockGPU{{Model: "A100-SXM4-40GB", Count: 2}}}
	cfg.Node.DevicePluginDir = filepath.Join(dir, "plugins")
	cfg.Node.StateDir = filepath.Join(dir, "state")
	cfg.Node.PodResourcesSocket = filepath.Join(dir, "pr.sock")
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(cfg.Node.DevicePluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubelet, err := fakekubelet.Start(cfg.Node.DevicePluginDir, cfg.Resources.VGPU)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kubelet.Stop)
	if err := kubelet.ServePodResources(cfg.Node.PodResourcesSocket); err != nil {
		t.Fatal(err)
	}
	lib, err := gpu.NewMockLibrary(cfg.Node.Mock, testNode)
	if err != nil {
		t.Fatal(err)
	}
	opts := options.New()
	opts.NodeName = testNode
	opts.HealthAddr = "127.0.0.1:0"
	opts.MetricsAddr = "127.0.0.1:0"
	return &testSetup{
		cfg: cfg, opts: opts, lib: lib, kubelet: kubelet,
		client: fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}),
	}
}

func TestAgentRunsEndToEndAndStopsCleanly(t *testing.T) {
	s := newTestSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	agent, err := NewAgent(ctx, s.cfg, s.opts, s.client, s.lib)
	if err != nil {
		t.Fatalf("NewAgent: %v", err)
	}
	if agent.Live() == nil || agent.Ready() == nil {
		t.Error("the agent is live or ready before it has run")
	}
	gpus := agent.GPUs()
	if len(gpus) != 2 {
		t.Fatalf("agent found %d GPUs, want 2", len(gpus))
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agent.Run(runCtx) }()
	// Read while running: the addresses must stay known once Run serves them.
	healthURL := "http://" + agent.HealthAddr() + "/healthz"
	readyURL := "http://" + agent.HealthAddr() + "/readyz"
	metricsURL := "http://" + agent.MetricsAddr() + "/metrics"
	if agent.HealthAddr() == "" || agent.MetricsAddr() == "" {
		t.Fatalf("health address %q or metrics address %q is empty although both are set", agent.HealthAddr(), agent.MetricsAddr())
	}

	// Ready once the plugin is registered and the Node is published; both
	// are then checked directly.
	poll(t, "readyz 200", func() bool { code, _ := get(readyURL); return code == http.StatusOK })
	if code, err := get(healthURL); code != http.StatusOK {
		t.Errorf("healthz = %d, %v while ready", code, err)
	}
	if s.kubelet.Registrations() < 1 {
		t.Error("readyz is ok but the kubelet saw no registration")
	}
	waitCtx, waitCancel := context.WithTimeout(ctx, 10*time.Second)
	defer waitCancel()
	if err := s.kubelet.WaitForDevices(waitCtx, func(d []*pluginapi.Device) bool { return countHealthy(d) == 20 }); err != nil {
		t.Fatalf("kubelet never saw 20 healthy slots: %v (devices %v)", err, s.kubelet.Devices())
	}
	memName := corev1.ResourceName(s.cfg.Resources.Memory)
	wantMem := gpus[0].MemoryMiB + gpus[1].MemoryMiB
	node := s.node(t)
	inv, err := annotations.DecodeInventory(node.Annotations[s.cfg.Keys().Inventory])
	if err != nil || len(inv.GPUs) != 2 {
		t.Fatalf("inventory annotation: %v, %+v", err, inv)
	}
	if got := node.Status.Allocatable[memName]; got.Value() != wantMem {
		t.Errorf("allocatable %s = %s, want %d", memName, got.String(), wantMem)
	}

	s.checkMetricsOfAdmittedPod(t, waitCtx, metricsURL, gpus[0])

	// A critical Xid reaches both the kubelet and the Node.
	if err := s.lib.InjectXid(gpus[0].UUID, 79); err != nil {
		t.Fatal(err)
	}
	if err := s.kubelet.WaitForDevices(waitCtx, func(d []*pluginapi.Device) bool { return countHealthy(d) == 10 }); err != nil {
		t.Fatalf("kubelet never saw GPU 0's slots unhealthy: %v", err)
	}
	poll(t, "node memory without GPU 0", func() bool {
		got := s.node(t).Status.Allocatable[memName]
		return got.Value() == gpus[1].MemoryMiB
	})

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return within 20s of cancel")
	}
	for _, url := range []string{healthURL, metricsURL} {
		if code, err := get(url); err == nil {
			t.Errorf("%s still answers (%d) after Run returned", url, code)
		}
	}
	if _, err := os.Stat(filepath.Join(s.cfg.Node.DevicePluginDir, deviceplugin.SocketName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("plugin socket still exists after Run returned: %v", err)
	}
}

// TestLivenessDoesNotNeedTheAPIServer: with every Node write refused, the
// agent is alive (the kubelet must not restart it) but not ready.
func TestLivenessDoesNotNeedTheAPIServer(t *testing.T) {
	s := newTestSetup(t)
	s.client.PrependReactor("patch", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("API server unavailable")
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	agent, err := NewAgent(ctx, s.cfg, s.opts, s.client, s.lib)
	if err != nil {
		t.Fatalf("NewAgent: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	base := "http://" + agent.HealthAddr()
	poll(t, "healthz 200", func() bool { code, _ := get(base + "/healthz"); return code == http.StatusOK })
	code, body := getBody(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "node-inventory") || strings.Contains(body, "device-plugin") {
		t.Errorf("readyz = %d %q, want 503 naming only the node inventory", code, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestNewAgentFailsOnATakenPort(t *testing.T) {
	tests := []struct {
		name string
		set  func(*options.Options, string)
		want string
	}{
		{"health", func(o *options.Options, addr string) { o.HealthAddr = addr }, "listen for health probes on "},
		{"metrics", func(o *options.Options, addr string) { o.MetricsAddr = addr }, "listen for metrics on "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSetup(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = ln.Close() }()
			tt.set(s.opts, ln.Addr().String())
			_, err = NewAgent(context.Background(), s.cfg, s.opts, s.client, s.lib)
			if err == nil || !strings.Contains(err.Error(), tt.want+ln.Addr().String()) {
				t.Fatalf("NewAgent error = %v, want one containing %q", err, tt.want+ln.Addr().String())
			}
		})
	}
}

func TestDisabledEndpointsHaveNoAddress(t *testing.T) {
	s := newTestSetup(t)
	s.opts.HealthAddr, s.opts.MetricsAddr, s.opts.UsageReportInterval = "0", "0", 0
	agent, err := NewAgent(context.Background(), s.cfg, s.opts, s.client, s.lib)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if agent.HealthAddr() != "" || agent.MetricsAddr() != "" || agent.podInformers != nil {
		t.Errorf("disabled endpoints: health %q, metrics %q, pod informers %v", agent.HealthAddr(), agent.MetricsAddr(), agent.podInformers)
	}
}

// TestBindAddressPlacesPortOnlyListeners: --bind-address puts the health
// and metrics listeners that give only a port on that IP, where without it
// they listen on every interface; an address with its own host keeps it.
func TestBindAddressPlacesPortOnlyListeners(t *testing.T) {
	tests := []struct {
		name, bind, health, metrics string
		// wantHealth and wantMetrics check the host listened on.
		wantHealth, wantMetrics func(net.IP) bool
	}{
		{"bind address", "127.0.0.1", ":0", ":0", net.IP.IsLoopback, net.IP.IsLoopback},
		{"no bind address: every interface", "", ":0", ":0", net.IP.IsUnspecified, net.IP.IsUnspecified},
		{"an explicit host wins", "0.0.0.0", "127.0.0.1:0", ":0", net.IP.IsLoopback, net.IP.IsUnspecified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestSetup(t)
			s.opts.BindAddress, s.opts.HealthAddr, s.opts.MetricsAddr = tt.bind, tt.health, tt.metrics
			if err := s.opts.Validate(); err != nil {
				t.Fatal(err)
			}
			agent, err := NewAgent(context.Background(), s.cfg, s.opts, s.client, s.lib)
			if err != nil {
				t.Fatal(err)
			}
			defer agent.Close()
			for _, ep := range []struct {
				what, addr string
				want       func(net.IP) bool
			}{{"health", agent.HealthAddr(), tt.wantHealth}, {"metrics", agent.MetricsAddr(), tt.wantMetrics}} {
				host, _, err := net.SplitHostPort(ep.addr)
				if ip := net.ParseIP(host); err != nil || ip == nil || !ep.want(ip) {
					t.Errorf("%s listens on %q (%v)", ep.what, ep.addr, err)
				}
			}
		})
	}
}

// TestUsageReportWithoutMetrics: the gpu-usage annotation is written even
// when /metrics is off, from the same pod informer the metrics would use.
func TestUsageReportWithoutMetrics(t *testing.T) {
	s := newTestSetup(t)
	s.opts.MetricsAddr, s.opts.UsageReportInterval = "0", 20*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	agent, err := NewAgent(ctx, s.cfg, s.opts, s.client, s.lib)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agent.Run(runCtx) }()
	poll(t, "gpu-usage annotation", func() bool {
		raw, ok := s.node(t).Annotations[s.cfg.Keys().Usage]
		if !ok {
			return false
		}
		_, err := annotations.DecodeUsage(raw)
		return err == nil
	})
	poll(t, "agent ready", func() bool { return agent.Ready() == nil }) // a clean stop needs a started plugin
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func (s *testSetup) node(t *testing.T) *corev1.Node {
	t.Helper()
	n, err := s.client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countHealthy(devices []*pluginapi.Device) int {
	n := 0
	for _, d := range devices {
		if d.GetHealth() == pluginapi.Healthy {
			n++
		}
	}
	return n
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url) //nolint:gosec // a loopback URL the test built
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func get(url string) (int, error) {
	resp, err := http.Get(url) //nolint:gosec // a loopback URL the test built
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// poll waits for an outcome with a generous deadline; it times nothing.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
