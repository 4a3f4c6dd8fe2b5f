package deviceplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/hookenv"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

const (
	testNode     = "node-a"
	testResource = "tessera.io/vgpu"
	waitTimeout  = 10 * time.Second
)

// fakeGPUs is an in-test DeviceSource whose health tests flip.
type fakeGPUs struct {
	mu   sync.Mutex
	gpus []vgpu.GPU
	subs map[int]chan struct{}
	next int
}

func newFakeGPUs(count, slots int) *fakeGPUs {
	f := &fakeGPUs{subs: map[int]chan struct{}{}}
	for i := range count {
		f.gpus = append(f.gpus, vgpu.GPU{
			UUID: gpuUUID(i), Index: i, Model: "NVIDIA A100-SXM4-80GB", MemoryMiB: 81920,
			Slots: slots, Cores: vgpu.FullCores, NUMANode: i / 4, Healthy: true,
		})
	}
	return f
}

func gpuUUID(i int) string { return fmt.Sprintf("GPU-00000000-0000-0000-0000-%012d", i) }

func (f *fakeGPUs) GPUs() []vgpu.GPU {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]vgpu.GPU, len(f.gpus))
	copy(out, f.gpus)
	return out
}

func (f *fakeGPUs) Subscribe() (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := f.next
	f.next++
	ch := make(chan struct{}, 1)
	f.subs[id] = ch
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, id)
	}
}

func (f *fakeGPUs) setHealthy(uuid string, healthy bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.gpus {
		if f.gpus[i].UUID == uuid {
			f.gpus[i].Healthy = healthy
		}
	}
	for _, ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// testContainer describes one container of a test pod and its assignment.
type testContainer struct {
	name  string
	slots []string
	mem   int64
	cores int
}

// podSpec builds a pod bound to node with one container per testContainer,
// each requesting as many slots as it is assigned; the assignment
// annotation is set when assign is true.
func podSpec(name string, created time.Time, node string, assign bool, containers ...testContainer) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(created), Annotations: map[string]string{},
		},
		Spec:   corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	a := annotations.Assignment{Node: node}
	for _, c := range containers {
		q := resource.MustParse(fmt.Sprint(len(c.slots)))
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name: c.name, Image: "cuda",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{testResource: q}},
		})
		ca := annotations.ContainerAssignment{Name: c.name}
		for _, id := range c.slots {
			uuid, _, err := vgpu.ParseSlotID(id)
			if err != nil {
				panic(err)
			}
			mem := c.mem
			if mem == 0 {
				mem = 1024
			}
			ca.Devices = append(ca.Devices, annotations.AssignedDevice{UUID: uuid, SlotID: id, MemoryMiB: mem, Cores: c.cores})
		}
		a.Containers = append(a.Containers, ca)
	}
	if assign {
		v, err := annotations.EncodeAssignment(a)
		if err != nil {
			panic(err)
		}
		pod.Annotations[annotations.DefaultKeys().Assignment] = v
	}
	return pod
}

// harness runs a plugin against a fake kubelet and a fake clientset.
type harness struct {
	t        *testing.T
	ctx      context.Context
	gpus     *fakeGPUs
	client   *fake.Clientset
	recorder *record.FakeRecorder
	kubelet  *fakekubelet.Kubelet
	opts     Options
	plugin   *Plugin
	stop     func()
}

func newHarness(t *testing.T, gpus *fakeGPUs, objects ...runtime.Object) *harness {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "dp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	pluginDir := filepath.Join(dir, "plugins")
	if err := os.Mkdir(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	kubelet, err := fakekubelet.Start(pluginDir, testResource)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kubelet.Stop)
	podResources := filepath.Join(dir, "pr.sock")
	if err := kubelet.ServePodResources(podResources); err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, ctx: ctx, gpus: gpus,
		client:   fake.NewClientset(objects...),
		recorder: record.NewFakeRecorder(1000),
		kubelet:  kubelet,
		opts: Options{
			ResourceName: testResource, NodeName: testNode, DevicePluginDir: pluginDir,
			StateDir: filepath.Join(dir, "state"), HookLibrary: "/opt/tessera/libtessera-hook.so",
			Keys: annotations.DefaultKeys(), PodResourcesSocket: podResources,
		},
	}
	return h
}

// startPlugin runs a new plugin and waits until the kubelet has its
// device list after registration number wantRegistrations.
func (h *harness) startPlugin(wantRegistrations int) {
	h.t.Helper()
	p, err := New(h.opts, h.gpus, h.client, h.recorder)
	if err != nil {
		h.t.Fatal(err)
	}
	p.tune.matchWait = 100 * time.Millisecond
	p.tune.pollInterval = 200 * time.Millisecond
	p.tune.registerBackoffMax = 200 * time.Millisecond
	p.tune.sweepInterval = 200 * time.Millisecond
	p.tune.stopTimeout = 2 * time.Second
	p.tune.resolveResync = 200 * time.Millisecond
	// Bounds the wait of PreStartContainer for a container the kubelet
	// never records (tests of that refusal); resolutions take milliseconds.
	p.tune.preStartWait = 2 * time.Second
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	h.plugin = p
	var once sync.Once
	h.stop = func() { once.Do(func() { stopRun(h.t, cancel, done) }) }
	h.t.Cleanup(h.stop)
	h.waitDevices(wantRegistrations, func([]*pluginapi.Device) bool { return true })
}

// stopRun cancels a plugin's Run and waits for it to return.
func stopRun(t *testing.T, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
	case <-time.After(waitTimeout):
		t.Error("Run did not return after its context was cancelled")
	}
}

// waitDevices waits for registration n and a device list satisfying cond.
func (h *harness) waitDevices(n int, cond func([]*pluginapi.Device) bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(h.ctx, waitTimeout)
	defer cancel()
	err := h.kubelet.WaitFor(ctx, func(s fakekubelet.State) bool {
		return s.Registrations >= n && s.Devices != nil && cond(s.Devices)
	})
	if err != nil {
		h.t.Fatalf("waiting for registration %d and devices: %v (registrations %d)", n, err, h.kubelet.Registrations())
	}
}

// createPod creates a pod and waits until the plugin's index has it.
func (h *harness) createPod(pod *corev1.Pod) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Pods(pod.Namespace).Create(h.ctx, pod, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
	if h.plugin != nil {
		eventually(h.t, "pod "+pod.Name+" in the index", func() bool { return h.plugin.index.hasPod(pod.UID) })
	}
}

// events drains the recorder.
func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// eventually polls cond until it holds or the wait times out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// envGPUs is the GPU list a response exposes.
func envGPUs(r *pluginapi.ContainerAllocateResponse) []string {
	return strings.Split(r.GetEnvs()[VisibleDevicesEnv], ",")
}

// regionMount is the host directory mounted at the region path.
func regionMount(r *pluginapi.ContainerAllocateResponse) string {
	for _, m := range r.GetMounts() {
		if m.GetContainerPath() == ContainerRegionDir {
			return m.GetHostPath()
		}
	}
	return ""
}

// waitLimits waits until the container of resp has its limits, as the
// interception library would read them.
func (h *harness) waitLimits(resp *pluginapi.ContainerAllocateResponse) hookenv.Limits {
	h.t.Helper()
	var l hookenv.Limits
	eventually(h.t, "limits of "+resp.GetEnvs()[hookenv.AllocationID], func() bool {
		got, ok, err := ContainerLimits(resp)
		if err != nil {
			h.t.Fatal(err)
		}
		l = got
		return ok
	})
	return l
}

// memLimits renders the memory limits of l, in ordinal order.
func memLimits(l hookenv.Limits) []int64 {
	var out []int64
	for _, d := range l.Devices {
		out = append(out, d.MemoryMiB)
	}
	return out
}
