// The in-process preview (--preview): NOT a cluster. One process holds a
// fake API server (client-go's fake clientset), a fake kubelet
// (pkg/fakekubelet), go-nvml's mock GPUs, and the real node agent (the same
// Agent that tessera-node-agent runs). It plays the scheduler extender by
// annotating a few pods, admits them through the fake kubelet, injects an
// Xid and reports what each part saw.

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	nodeagent "github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app"
	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/gpu"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// PreviewOptions configure the in-process preview.
type PreviewOptions struct {
	// Machine is the go-nvml mock machine (dgxa100, dgxh100, ...).
	Machine string
	// NodeName names the fake Node; it also seeds the mock GPU UUIDs.
	NodeName string
	// Verbose shows the agent's logs (on stderr) besides the report.
	Verbose bool
	// StepTimeout bounds each wait for the agent.
	StepTimeout time.Duration
}

// criticalXid is the Xid injected: 79, "GPU has fallen off the bus", which
// no configuration ignores.
const criticalXid = 79

// RunPreview performs the in-process preview and writes its report to out.
func RunPreview(ctx context.Context, out io.Writer, opts PreviewOptions) error {
	if !opts.Verbose {
		// The parts log through the context's logger; the report is the
		// output, so their logs are dropped unless asked for.
		ctx = klog.NewContext(ctx, logr.Discard())
	}
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 30 * time.Second
	}
	dir, err := os.MkdirTemp("", "tessera-demo")
	if err != nil {
		return fmt.Errorf("create demo directory: %w", err)
	}
	defer func() { _ = os.RemoveAll(dir) }()

	cfg := config.Default()
	cfg.Node.GPUBackend = config.BackendMock
	cfg.Node.Mock = config.MockNode{Machine: opts.Machine}
	cfg.Node.DevicePluginDir = filepath.Join(dir, "device-plugins")
	cfg.Node.StateDir = filepath.Join(dir, "state")
	cfg.Node.PodResourcesSocket = filepath.Join(dir, "pod-resources.sock")
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	if err := os.Mkdir(cfg.Node.DevicePluginDir, 0o755); err != nil {
		return fmt.Errorf("create device-plugin directory: %w", err)
	}
	kubelet, err := fakekubelet.Start(cfg.Node.DevicePluginDir, cfg.Resources.VGPU)
	if err != nil {
		return fmt.Errorf("start fake kubelet: %w", err)
	}
	defer kubelet.Stop()
	// The device plugin asks the kubelet's PodResources API whose
	// allocation is whose, as on a real node.
	if err := kubelet.ServePodResources(cfg.Node.PodResourcesSocket); err != nil {
		return fmt.Errorf("serve the fake kubelet's PodResources API: %w", err)
	}
	lib, err := gpu.NewMockLibrary(cfg.Node.Mock, opts.NodeName)
	if err != nil {
		return err
	}
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: opts.NodeName}})
	agentOpts := options.New()
	agentOpts.NodeName = opts.NodeName
	agentOpts.HealthAddr = "127.0.0.1:0"
	agent, err := nodeagent.NewAgent(ctx, cfg, agentOpts, client, lib)
	if err != nil {
		return err
	}
	gpus := agent.GPUs()
	if len(gpus) < 3 {
		agent.Close()
		return fmt.Errorf("mock machine %q has %d GPUs; the demo needs 3", opts.Machine, len(gpus))
	}
	// The pods exist before the agent starts, as on a node where the
	// extender has just bound them; the plugin's pod index lists them.
	pods, err := demoPods(cfg, opts.NodeName, gpus)
	if err != nil {
		agent.Close()
		return err
	}
	for _, p := range pods {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			agent.Close()
			return fmt.Errorf("create pod %s: %w", p.Name, err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agent.Run(runCtx) }()
	err = drive(ctx, out, demo{opts: opts, cfg: cfg, client: client, kubelet: kubelet, lib: lib, agent: agent, gpus: gpus, pods: pods})
	stop()
	if runErr := <-done; runErr != nil {
		err = errors.Join(err, fmt.Errorf("node agent: %w", runErr))
	}
	if err == nil {
		fmt.Fprintln(out, "\nThe node agent shut down cleanly.")
	}
	return err
}

// demo is everything the steps of the demo use.
type demo struct {
	opts    PreviewOptions
	cfg     config.Config
	client  *fake.Clientset
	kubelet *fakekubelet.Kubelet
	lib     *gpu.MockLibrary
	agent   *nodeagent.Agent
	gpus    []vgpu.GPU
	pods    []*corev1.Pod
}

// drive runs the steps against the running agent and reports each.
func drive(ctx context.Context, out io.Writer, d demo) error {
	r := report{out: out, cfg: d.cfg}
	r.header(d.opts, d.gpus)

	slots := len(d.gpus) * d.cfg.Node.SplitCount
	if err := d.step(ctx, "the agent to report healthy", func() bool { return d.healthz() == http.StatusOK }); err != nil {
		return err
	}
	if err := d.waitDevices(ctx, slots); err != nil {
		return err
	}
	node, err := d.client.CoreV1().Nodes().Get(ctx, d.opts.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read node %s: %w", d.opts.NodeName, err)
	}
	r.node(node, "after the agent started")
	r.kubeletDevices(d.kubelet.Devices())

	for _, pod := range d.pods {
		allocs, err := d.kubelet.AdmitPod(ctx, pod)
		if err != nil {
			return fmt.Errorf("admit pod %s through the fake kubelet: %w", pod.Name, err)
		}
		r.pod(pod, allocs)
	}

	sick := d.gpus[len(d.gpus)-1]
	r.section(fmt.Sprintf("Injecting Xid %d on GPU %d (%s)", criticalXid, sick.Index, sick.UUID))
	if err := d.lib.InjectXid(sick.UUID, criticalXid); err != nil {
		return err
	}
	if err := d.waitDevices(ctx, slots-sick.Slots); err != nil {
		return err
	}
	r.kubeletDevices(d.kubelet.Devices())
	memName := corev1.ResourceName(d.cfg.Resources.Memory)
	before := node.Status.Allocatable[memName]
	if err := d.step(ctx, "the node to drop the sick GPU", func() bool {
		n, err := d.client.CoreV1().Nodes().Get(ctx, d.opts.NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		node = n
		got := n.Status.Allocatable[memName]
		return got.Value() == before.Value()-sick.MemoryMiB
	}); err != nil {
		return err
	}
	r.node(node, "after the Xid")
	r.section("Health endpoint")
	fmt.Fprintf(out, "  GET http://%s/healthz -> %d\n", d.agent.HealthAddr(), d.healthz())
	return nil
}

// step polls cond until it holds or the step times out.
func (d demo) step(ctx context.Context, what string, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.StepTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// waitDevices waits until the kubelet's device list has n healthy slots.
func (d demo) waitDevices(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.StepTimeout)
	defer cancel()
	return d.kubelet.WaitForDevices(ctx, func(devs []*pluginapi.Device) bool { return countHealthy(devs) == n })
}

func (d demo) healthz() int {
	resp, err := http.Get("http://" + d.agent.HealthAddr() + "/healthz") //nolint:gosec // loopback address of our own agent
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func countHealthy(devs []*pluginapi.Device) int {
	n := 0
	for _, d := range devs {
		if d.GetHealth() == pluginapi.Healthy {
			n++
		}
	}
	return n
}
