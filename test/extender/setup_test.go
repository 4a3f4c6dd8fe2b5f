package extendere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app"
	"github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app/options"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/test/cluster"
)

var (
	keys      = annotations.DefaultKeys()
	resources = config.Default().Resources
)

const gib = 1024 // MiB

// holdPort binds a loopback port for the extender and returns it with the
// HeldPorts that hands it to the extender's first start: it stays bound
// while kube-scheduler, etcd and the API server start (they pick free
// ports too), instead of being closed and bound again later. A restarted
// extender binds it afresh, right after the first one released it.
func holdPort(t *testing.T) (*cluster.HeldPorts, int) {
	t.Helper()
	ports := &cluster.HeldPorts{}
	t.Cleanup(func() {
		if err := ports.Close(); err != nil {
			t.Error(err)
		}
	})
	addr, err := ports.Hold()
	if err != nil {
		t.Fatal(err)
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port of %s: %v", addr, err)
	}
	return ports, port
}

// schedulerConfig is deploy/scheduler/second-scheduler-config.yaml with the
// extender on port: the shipped file, not a copy, is what the real
// kube-scheduler runs with.
func schedulerConfig(t *testing.T, port int) string {
	t.Helper()
	data, err := os.ReadFile("../../deploy/scheduler/second-scheduler-config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const shipped = "urlPrefix: http://127.0.0.1:8888"
	if strings.Count(string(data), shipped) != 1 {
		t.Fatalf("second-scheduler-config.yaml does not contain %q exactly once", shipped)
	}
	return strings.Replace(string(data), shipped, fmt.Sprintf("urlPrefix: http://127.0.0.1:%d", port), 1)
}

// runningExtender is one instance of the extender command, in process.
type runningExtender struct {
	cancel  context.CancelFunc
	done    chan error
	metrics string // the /metrics URL
}

// startExtender runs the extender as its main would, with leader election
// on (short lease times), and waits until it answers on port.
// configFile is Tessera's configuration file; empty uses the defaults.
func startExtender(ctx context.Context, t *testing.T, kubeconfig string, ports *cluster.HeldPorts, port int, configFile string) *runningExtender {
	t.Helper()
	opts := options.New()
	opts.Listen = ports.Listen
	opts.Kubeconfig = kubeconfig
	opts.ConfigFile = configFile
	opts.BindAddress = fmt.Sprintf("127.0.0.1:%d", port)
	metricsAddr, err := ports.Hold()
	if err != nil {
		t.Fatal(err)
	}
	opts.MetricsBindAddress, opts.HealthBindAddress = metricsAddr, "0"
	opts.LeaderElection.LeaseDuration = 4 * time.Second
	opts.LeaderElection.RenewDeadline = 3 * time.Second
	opts.LeaderElection.RetryPeriod = 500 * time.Millisecond
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &runningExtender{cancel: cancel, done: make(chan error, 1), metrics: "http://" + opts.MetricsBindAddress + "/metrics"}
	go func() { r.done <- app.Run(ctx, opts) }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return r
			}
		}
		select {
		case err := <-r.done:
			t.Fatalf("extender exited while starting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("extender did not answer on port %d within a minute: %v", port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape reads the instance's counters from its /metrics, keyed
// "name/label value/...".
func (r *runningExtender) scrape(ctx context.Context, t *testing.T) map[string]float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metrics, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape the extender: %v", err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the extender's metrics: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			key := name
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// stop ends the instance gracefully (in-flight calls finish, the lease is
// released) and waits for it.
func (r *runningExtender) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Errorf("extender: %v", err)
	}
}

// gpuNode is one simulated node: its GPUs, published on its Node.
type gpuNode struct {
	name string
	gpus []vgpu.GPU
}

// staticGPUs is a DeviceSource whose GPUs never change health.
type staticGPUs []vgpu.GPU

func (s staticGPUs) GPUs() []vgpu.GPU                     { return slices.Clone(s) }
func (s staticGPUs) Subscribe() (<-chan struct{}, func()) { return make(chan struct{}), func() {} }

// addGPUNode creates a Node as the node agent publishes it (the inventory
// annotation, vgpu slots, memory and cores in capacity and allocatable).
func addGPUNode(ctx context.Context, t *testing.T, client kubernetes.Interface, name string, nGPUs int) *gpuNode {
	t.Helper()
	n := &gpuNode{name: name}
	for i := range nGPUs {
		n.gpus = append(n.gpus, vgpu.GPU{
			UUID: fmt.Sprintf("GPU-%s-%d", name, i), Index: i, Model: "NVIDIA A100-SXM4-80GB",
			MemoryMiB: 80 * gib, Slots: 10, Cores: vgpu.FullCores, Healthy: true,
		})
	}
	capacity := corev1.ResourceList{
		corev1.ResourceName(resources.VGPU):   *resource.NewQuantity(int64(nGPUs*10), resource.DecimalSI),
		corev1.ResourceName(resources.Memory): *resource.NewQuantity(int64(nGPUs)*80*gib, resource.DecimalSI),
		corev1.ResourceName(resources.Cores):  *resource.NewQuantity(int64(nGPUs*vgpu.FullCores), resource.DecimalSI),
	}
	if _, err := cluster.AddNode(ctx, client, name, capacity, nil); err != nil {
		t.Fatal(err)
	}
	inv, err := annotations.EncodeInventory(annotations.Inventory{GPUs: n.gpus})
	if err != nil {
		t.Fatal(err)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{keys.Inventory: inv}}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("publish inventory of %s: %v", name, err)
	}
	return n
}

// startKubelet starts the node's device plugin beside a fake kubelet in dir
// (an empty directory) and waits until the kubelet sees every slot. stop
// ends both. It only reports errors, so that it may run off the test's
// goroutine.
//
// Kubelets are started when their pods are admitted, a few at a time,
// rather than for the whole run: every device plugin holds an inotify
// instance, of which a user has 128 on a stock kernel, shared with every
// other test running on the machine.
func startKubelet(ctx context.Context, client kubernetes.Interface, n *gpuNode, dir string) (kubelet *fakekubelet.Kubelet, stop func(), err error) {
	dpDir, state := filepath.Join(dir, "dp"), filepath.Join(dir, "state")
	for _, d := range []string{dpDir, state} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, nil, err
		}
	}
	if kubelet, err = fakekubelet.Start(dpDir, resources.VGPU); err != nil {
		return nil, nil, fmt.Errorf("node %s: start the kubelet: %w", n.name, err)
	}
	podResources := filepath.Join(dpDir, "pr.sock")
	if err := kubelet.ServePodResources(podResources); err != nil {
		kubelet.Stop()
		return nil, nil, fmt.Errorf("node %s: serve PodResources: %w", n.name, err)
	}
	plugin, err := deviceplugin.New(deviceplugin.Options{
		ResourceName: resources.VGPU, NodeName: n.name, DevicePluginDir: dpDir, StateDir: state,
		HookLibrary: "/usr/local/tessera/lib/libtessera-hook.so", Keys: keys, PodResourcesSocket: podResources,
	}, staticGPUs(n.gpus), client, &record.FakeRecorder{})
	if err != nil {
		kubelet.Stop()
		return nil, nil, fmt.Errorf("node %s: %w", n.name, err)
	}
	pluginCtx, stopPlugin := context.WithCancel(ctx)
	pluginDone := make(chan error, 1)
	go func() { pluginDone <- plugin.Run(pluginCtx) }()
	stop = func() {
		stopPlugin()
		if err := <-pluginDone; err != nil {
			klog.ErrorS(err, "Device plugin failed", "node", n.name)
		}
		kubelet.Stop()
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := kubelet.WaitForDevices(waitCtx, func(d []*pluginapi.Device) bool { return len(d) == len(n.gpus)*10 }); err != nil {
		stop()
		return nil, nil, fmt.Errorf("node %s: %w", n.name, err)
	}
	return kubelet, stop, nil
}

func createAll(ctx context.Context, t *testing.T, client kubernetes.Interface, pods []*corev1.Pod) {
	t.Helper()
	for err := range createInBackground(ctx, client, pods) {
		t.Fatal(err)
	}
}

// createInBackground creates the pods, 20 at a time, and returns their
// errors on a channel that is closed once every create has returned.
func createInBackground(ctx context.Context, client kubernetes.Interface, pods []*corev1.Pod) <-chan error {
	errs := make(chan error, len(pods))
	sem := make(chan struct{}, 20)
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				errs <- fmt.Errorf("create pod %s: %w", p.Name, err)
			}
		})
	}
	go func() {
		wg.Wait()
		close(errs)
	}()
	return errs
}

// watchBound returns a channel closed once want pods have been bound. It
// uses an informer, which re-lists when the API server ends a watch (it
// does so with watchers that fall behind a burst of events).
func watchBound(ctx context.Context, t *testing.T, client kubernetes.Interface, want int) <-chan struct{} {
	t.Helper()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"))
	done := make(chan struct{})
	var mu sync.Mutex
	bound := map[string]bool{}
	count := func(obj any) {
		pod, ok := obj.(*corev1.Pod)
		if !ok || pod.Spec.NodeName == "" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if bound[pod.Name] {
			return
		}
		bound[pod.Name] = true
		if len(bound) == want {
			close(done)
		}
	}
	if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: count, UpdateFunc: func(_, obj any) { count(obj) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(factory.Shutdown)
	factory.WaitForCacheSync(ctx.Done())
	return done
}

// arrivals records, per node, the order in which pods reach that node,
// through a watch limited to the node as the kubelet's and the device
// plugin's are. The kubelet admits pods by creation time, then in this
// order (it stable-sorts each batch of new pods by creation time).
type arrivals struct {
	mu    sync.Mutex
	order map[string]int // pod name -> arrival number on its node
	next  map[string]int // node -> next arrival number
}

func watchArrivals(ctx context.Context, t *testing.T, client kubernetes.Interface, nodeNames []string) *arrivals {
	t.Helper()
	a := &arrivals{order: map[string]int{}, next: map[string]int{}}
	for _, node := range nodeNames {
		factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
			}))
		if _, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if pod, ok := obj.(*corev1.Pod); ok {
					a.arrived(node, pod.Name)
				}
			},
		}); err != nil {
			t.Fatal(err)
		}
		factory.Start(ctx.Done())
		t.Cleanup(factory.Shutdown)
		factory.WaitForCacheSync(ctx.Done())
	}
	return a
}

func (a *arrivals) arrived(node, pod string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.order[pod]; !ok {
		a.order[pod] = a.next[node]
		a.next[node]++
	}
}

func (a *arrivals) of(pod string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.order[pod]
}

func listPods(ctx context.Context, t *testing.T, client kubernetes.Interface) []corev1.Pod {
	t.Helper()
	list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func countBound(ctx context.Context, t *testing.T, client kubernetes.Interface) int {
	n := 0
	for _, p := range listPods(ctx, t, client) {
		if p.Spec.NodeName != "" {
			n++
		}
	}
	return n
}

func waitBound(ctx context.Context, t *testing.T, client kubernetes.Interface, want int, timeout, poll time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := countBound(ctx, t, client)
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods bound after %v, want %d", got, timeout, want)
		}
		time.Sleep(poll)
	}
}

// startSchedulerMember starts a member cluster of real etcd, kube-apiserver
// and kube-scheduler (with schedulerConfig) and stops it when the test
// ends; its cleanup is registered first, so it runs after the nodes'.
func startSchedulerMember(ctx context.Context, t *testing.T, name, schedulerConfig string) *cluster.Member {
	t.Helper()
	paths, err := cluster.Binaries(ctx, cluster.ComponentEtcd, cluster.ComponentKubernetes)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cluster.StartMember(ctx, cluster.Options{
		Name: name, Paths: paths, Scheduler: true, SchedulerConfig: schedulerConfig, T: t,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}
