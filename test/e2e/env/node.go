package env

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	agentapp "github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app"
	agentoptions "github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/gpu"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// nodeCapacity is what every simulated node offers besides its GPUs: room
// enough that only the GPUs ever limit where a pod goes.
func nodeCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("64"),
		corev1.ResourceMemory: resource.MustParse("512Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// MemberLabel is set on every Node to the name of its member.
const MemberLabel = "e2e.tessera.io/member"

// Node is one simulated GPU node: the real node agent on mock GPUs and a
// simulated kubelet around pkg/fakekubelet.
type Node struct {
	name    string
	gpus    []vgpu.GPU
	lib     *gpu.MockLibrary
	devices *fakekubelet.Kubelet
	kubelet *simKubelet
	agent   *component
	pods    *component
}

// Name is the Node's name.
// usageReportInterval is how often the node agents write the gpu-usage
// annotation here.
const usageReportInterval = 2 * time.Second

func (n *Node) Name() string { return n.name }

// GPUs are the node's GPUs as the agent discovered them.
func (n *Node) GPUs() []vgpu.GPU { return append([]vgpu.GPU(nil), n.gpus...) }

// MockGPUs is the node's go-nvml mock library, for injecting Xid errors.
func (n *Node) MockGPUs() *gpu.MockLibrary { return n.lib }

// Admission is what the simulated kubelet did with a pod: the devices the
// device plugin gave each GPU container, or why admission failed.
func (n *Node) Admission(uid types.UID) (allocations []fakekubelet.ContainerAllocation, rejected string, seen bool) {
	return n.kubelet.admission(uid)
}

// startNode creates the Node, the fake kubelet's device-plugin directory,
// the node agent and the simulated kubelet, and returns once the Node
// carries the GPU inventory and all three extended resources.
func (e *Env) startNode(ctx context.Context, m *Member, name string, spec NodeSpec) (*Node, error) {
	start := time.Now()
	dir := filepath.Join(e.dir, "n", name)
	cfg := e.cfg
	cfg.Node.GPUBackend = config.BackendMock
	cfg.Node.Mock = config.MockNode{GPUs: spec.GPUs}
	cfg.Node.DevicePluginDir = filepath.Join(dir, "dp")
	cfg.Node.StateDir = filepath.Join(dir, "state")
	cfg.Node.PodResourcesSocket = filepath.Join(dir, "pr.sock")
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node %s: configuration: %w", name, err)
	}
	for _, d := range []string{cfg.Node.DevicePluginDir, cfg.Node.StateDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("node %s: %w", name, err)
		}
	}
	if _, err := cluster.AddNode(ctx, m.Client(), name, nodeCapacity(), map[string]string{MemberLabel: m.name}); err != nil {
		return nil, err
	}
	lib, err := gpu.NewMockLibrary(cfg.Node.Mock, name)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", name, err)
	}
	devices, err := fakekubelet.Start(cfg.Node.DevicePluginDir, cfg.Resources.VGPU)
	if err != nil {
		return nil, fmt.Errorf("node %s: start fake kubelet: %w", name, err)
	}
	// The device plugin learns whose allocation is whose from the
	// kubelet's PodResources API, as on a real node.
	if err := devices.ServePodResources(cfg.Node.PodResourcesSocket); err != nil {
		devices.Stop()
		return nil, fmt.Errorf("node %s: serve PodResources: %w", name, err)
	}
	n := &Node{name: name, lib: lib, devices: devices}
	if n.agent, n.gpus, err = e.startAgent(ctx, m, name, cfg, lib); err != nil {
		return n, err
	}
	_, client, err := componentClient(m, "kubelet/"+name)
	if err != nil {
		return n, err
	}
	n.kubelet = newSimKubelet(name, client, devices, corev1.ResourceName(cfg.Resources.VGPU))
	if n.pods, err = e.runComponent(ctx, name+"-kubelet", n.kubelet.run); err != nil {
		return n, err
	}
	if err := e.waitNodePublished(ctx, m, n, cfg); err != nil {
		return n, err
	}
	e.logf("%s: node %s with %d GPUs published after %s", m.name, name, len(n.gpus), time.Since(start).Round(time.Millisecond))
	return n, nil
}

// startAgent runs the node agent (the same Agent as tessera-node-agent)
// and returns the GPUs it discovered.
func (e *Env) startAgent(ctx context.Context, m *Member, name string, cfg config.Config, lib *gpu.MockLibrary) (*component, []vgpu.GPU, error) {
	client, err := kubernetes.NewForConfig(e.ids.config(m.ids.agent, name+"-agent"))
	if err != nil {
		return nil, nil, fmt.Errorf("node agent of %s: client: %w", name, err)
	}
	opts := agentoptions.New()
	opts.NodeName = name
	// No health or metrics endpoint: nothing probes them here, and their
	// defaults listen on every interface.
	opts.HealthAddr, opts.MetricsAddr = "0", "0"
	// The gpu-usage report every 2 s, so that the fleet view's observed
	// use shows up within a test's patience (30 s in production).
	opts.UsageReportInterval = usageReportInterval
	if err := opts.Validate(); err != nil {
		return nil, nil, fmt.Errorf("node agent options of %s: %w", name, err)
	}
	type started struct {
		gpus []vgpu.GPU
		err  error
	}
	ready := make(chan started, 1)
	c, err := e.runComponent(ctx, name+"-agent", func(ctx context.Context) error {
		agent, err := agentapp.NewAgent(ctx, cfg, opts, client, lib)
		if err != nil {
			ready <- started{err: err}
			return err
		}
		ready <- started{gpus: agent.GPUs()}
		return agent.Run(ctx)
	})
	if err != nil {
		return nil, nil, err
	}
	s := <-ready
	if s.err != nil {
		_ = c.stop()
		return nil, nil, fmt.Errorf("node agent of %s (log %s): %w", name, e.logs.path(c.name), s.err)
	}
	return c, s.gpus, nil
}

// waitNodePublished waits until the Node carries what the scheduler, the
// extender and Karmada read: the inventory annotation (agent), vgpu-memory
// and vgpu-cores (agent), and vgpu slots (kubelet, from the device plugin).
func (e *Env) waitNodePublished(ctx context.Context, m *Member, n *Node, cfg config.Config) error {
	var slots, memory, cores int64
	for _, g := range n.gpus {
		if g.Healthy {
			slots += int64(g.Slots)
			memory += g.MemoryMiB
			cores += int64(g.Cores)
		}
	}
	want := map[corev1.ResourceName]int64{
		corev1.ResourceName(cfg.Resources.VGPU):   slots,
		corev1.ResourceName(cfg.Resources.Memory): memory,
		corev1.ResourceName(cfg.Resources.Cores):  cores,
	}
	inventoryKey := cfg.Keys().Inventory
	return Eventually(ctx, e.opts.StartTimeout, fmt.Sprintf("node %s of %s to carry its GPUs (%v)", n.name, m.name, want),
		func(ctx context.Context) (bool, string, error) {
			if done, err := n.agent.exited(); done {
				return false, "", fmt.Errorf("node agent exited (log %s): %v", e.logs.path(n.agent.name), err)
			}
			node, err := m.Client().CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			if _, ok := node.Annotations[inventoryKey]; !ok {
				return false, "no inventory annotation " + inventoryKey, nil
			}
			for name, v := range want {
				got := node.Status.Allocatable[name]
				if got.Value() != v {
					return false, fmt.Sprintf("allocatable %s=%s", name, got.String()), nil
				}
			}
			return true, "", nil
		})
}

// stop stops the kubelet, the agent (its device plugin) and the fake kubelet.
func (n *Node) stop() []error {
	errs := []error{n.pods.stop(), n.agent.stop()}
	if n.devices != nil {
		n.devices.Stop()
	}
	return errs
}
