package deviceplugin

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// The randomized proof that no container ever runs with another pod's
// GPUs or limits, whatever order the kubelet admits pods in. Per seed: 20
// nodes (8 GPUs x 8 slots each) and 400 pods with one or two containers of
// one or two vGPUs, mixed memory and core shares, placed as the extender
// would. Each node's pods are bound in bursts, and its kubelet receives the
// bursts one behind the API server and admits them in the kubelet's order
// (burst by burst, each sorted by creation time), with creation times
// shuffled against binding order: younger pods are admitted before older
// ones the plugin already knows, the case that age matching cannot decide.
// Some pods reach the API server only as the kubelet admits them, others
// reach the plugin's informer only after the kubelet admitted them (after
// their own Allocate), agents are restarted between
// an Allocate and its resolution, and kubelets restart with running pods.
//
// TESSERA_RANDOM_SEEDS overrides the number of seeds (default 50).
const (
	randomNodes       = 20
	randomPods        = 400
	randomGPUs        = 8
	randomSlots       = 8
	randomGPUMemory   = 81920
	randomLateShare   = 10 // percent of pods created as the kubelet admits them
	randomLagShare    = 10 // percent of pods the plugin's informer delivers only after their admission
	randomRestartOdds = 40 // one Allocate in this many restarts the agent
)

func TestRandomizedAdmissionGivesEveryContainerItsOwnLimits(t *testing.T) {
	seeds := 50
	if s, err := strconv.Atoi(os.Getenv("TESSERA_RANDOM_SEEDS")); err == nil && s > 0 {
		seeds = s
	}
	var wrong, containers, restarts int
	for seed := range seeds {
		w, c, r := runRandomCluster(t, uint64(seed))
		wrong, containers, restarts = wrong+w, containers+c, restarts+r
	}
	t.Logf("%d seeds: %d containers admitted, %d agent restarts, %d wrong", seeds, containers, restarts, wrong)
	if wrong > 0 {
		t.Errorf("%d of %d containers ran with GPUs or limits other than their pod's assignment", wrong, containers)
	}
}

// randomPod is a pod and how it reaches the node's agent.
type randomPod struct {
	pod *corev1.Pod
	// late: created in the API server only as the kubelet admits it.
	late bool
	// lagged: in the API server before, but the agent's informer delivers
	// it only after the kubelet admitted it (after its own Allocates).
	lagged bool
}

// placeRandomPods places pods on one node as the extender would: each
// container on distinct GPUs with a free slot, enough memory and cores.
func placeRandomPods(rng *rand.Rand, node string, n int, base time.Time) []randomPod {
	freeMem := make([]int64, randomGPUs)
	freeCores := make([]int, randomGPUs)
	nextSlot := make([]int, randomGPUs)
	for g := range randomGPUs {
		freeMem[g], freeCores[g] = randomGPUMemory, 100
	}
	var out []randomPod
	for i := range n {
		var cs []testContainer
		for c := range 1 + rng.IntN(2) {
			want := 1 + rng.IntN(2)
			mem := []int64{2048, 4096, 8192, 10240, 20480}[rng.IntN(5)]
			cores := []int{0, 10, 25, 50}[rng.IntN(4)]
			var slots []string
			for _, g := range rng.Perm(randomGPUs) {
				if len(slots) < want && nextSlot[g] < randomSlots && freeMem[g] >= mem && freeCores[g] >= cores {
					slots = append(slots, vgpu.SlotID(gpuUUID(g), nextSlot[g]))
					nextSlot[g]++
					freeMem[g] -= mem
					freeCores[g] -= cores
				}
			}
			if len(slots) == want {
				cs = append(cs, testContainer{name: fmt.Sprintf("c%d", c), slots: slots, mem: mem, cores: cores})
			}
		}
		if len(cs) == 0 {
			continue // The node is full for this pod: the extender places it elsewhere.
		}
		// Creation times are shuffled against the binding order.
		created := base.Add(time.Duration(rng.IntN(4*n)) * time.Second)
		pod := podSpec(fmt.Sprintf("%s-p%03d", node, i), created, node, true, cs...)
		pod.UID = types.UID("uid-" + pod.Name)
		arrival := rng.IntN(100)
		out = append(out, randomPod{pod: pod, late: arrival < randomLateShare,
			lagged: arrival >= randomLateShare && arrival < randomLateShare+randomLagShare})
	}
	return out
}

// runRandomCluster runs one seed and returns how many containers were
// wrong, how many were admitted and how many agent restarts there were.
func runRandomCluster(t *testing.T, seed uint64) (wrong, admitted, restarts int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for n := range randomNodes {
		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		node := fmt.Sprintf("n%02d", n)
		pods := placeRandomPods(rng, node, randomPods/randomNodes, base)
		// One API server per node: a plugin reads only its node's pods,
		// so this changes nothing it sees, and it spares every informer
		// the other 19 nodes' events. The simple clientset: the
		// field-managed one builds a REST mapper on every write, which
		// was over half of this test's CPU.
		client := fake.NewSimpleClientset() //nolint:staticcheck // See above.
		wg.Go(func() {
			w, a, r := runRandomNode(t, ctx, client, node, pods, rng)
			mu.Lock()
			wrong, admitted, restarts = wrong+w, admitted+a, restarts+r
			mu.Unlock()
		})
	}
	wg.Wait()
	return wrong, admitted, restarts
}

// randomAgent is one node's device plugin, restartable.
type randomAgent struct {
	t      *testing.T
	opts   Options
	client *fake.Clientset
	gpus   *fakeGPUs

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan error
}

func (a *randomAgent) start(ctx context.Context) {
	p, err := newRandomPlugin(a.opts, a.gpus, a.client, &record.FakeRecorder{})
	if err != nil {
		a.t.Error(err)
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	a.mu.Lock()
	a.cancel, a.done = cancel, done
	a.mu.Unlock()
}

func (a *randomAgent) stop() {
	a.mu.Lock()
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		a.t.Errorf("agent Run: %v", err)
	}
}

func runRandomNode(t *testing.T, ctx context.Context, client *fake.Clientset, node string, pods []randomPod, rng *rand.Rand) (wrong, admitted, restarts int) {
	dir, err := os.MkdirTemp(fastTempRoot(), "rn")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.RemoveAll(dir) }()
	pluginDir := filepath.Join(dir, "p")
	if err := os.Mkdir(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	kubelet, err := fakekubelet.Start(pluginDir, testResource)
	if err != nil {
		t.Fatal(err)
	}
	defer kubelet.Stop()
	podResources := filepath.Join(dir, "pr.sock")
	if err := kubelet.ServePodResources(podResources); err != nil {
		t.Fatal(err)
	}
	// Before the agent starts: its informer's List and watch go through it.
	lag := newInformerLag(client)
	agent := &randomAgent{t: t, client: client, gpus: newFakeGPUs(randomGPUs, randomSlots),
		opts: randomOptions(node, pluginDir, filepath.Join(dir, "s"), podResources)}
	for i := range agent.gpus.gpus {
		agent.gpus.gpus[i].MemoryMiB = randomGPUMemory
	}
	registered := 1
	waitRegistered := func() {
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := kubelet.WaitFor(wctx, func(s fakekubelet.State) bool {
			return s.Registrations >= registered && s.Devices != nil && s.Options != nil
		}); err != nil {
			t.Errorf("node %s: waiting for registration %d: %v", node, registered, err)
		}
	}
	agent.start(ctx)
	defer agent.stop()
	waitRegistered()

	// Agent restarts between an Allocate and its resolution.
	var restartNow atomic.Bool
	kubelet.OnAllocated(func(*corev1.Pod, string, []string) {
		if !restartNow.Swap(false) {
			return
		}
		agent.stop()
		agent.start(ctx)
		restarts++
		registered++
		waitRegistered()
	})

	// Bursts of 1-6 pods in binding order; the kubelet lags one burst.
	var bursts [][]randomPod
	for rest := pods; len(rest) > 0; {
		n := min(1+rng.IntN(6), len(rest))
		bursts = append(bursts, rest[:n])
		rest = rest[n:]
	}
	create := func(p *corev1.Pod) {
		if _, err := client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Errorf("create pod %s: %v", p.Name, err)
		}
	}
	bind := func(b []randomPod) {
		for _, rp := range b {
			if rp.lagged {
				lag.hold(rp.pod.UID)
			}
			if !rp.late {
				create(rp.pod)
			}
		}
	}
	if len(bursts) > 0 {
		bind(bursts[0])
	}
	var lateWG sync.WaitGroup
	defer lateWG.Wait()
	var started []admittedPod
	for i, b := range bursts {
		if i+1 < len(bursts) {
			bind(bursts[i+1])
		}
		batch := make([]*corev1.Pod, len(b))
		late := map[string]bool{}
		for j, rp := range b {
			batch[j] = rp.pod
			late[rp.pod.Name] = rp.late
		}
		lagged := map[string]bool{}
		for _, rp := range b {
			lagged[rp.pod.Name] = rp.lagged
		}
		for _, pod := range fakekubelet.AdmissionOrder([][]*corev1.Pod{batch}) {
			if late[pod.Name] {
				// The kubelet saw the pod before this node's agent could.
				delay := time.Duration(rng.IntN(30)) * time.Millisecond
				lateWG.Go(func() {
					time.Sleep(delay)
					create(pod)
				})
			}
			restartNow.Store(rng.IntN(randomRestartOdds) == 0)
			allocs, err := kubelet.AdmitPod(ctx, pod)
			restartNow.Store(false)
			if lagged[pod.Name] {
				lag.let(pod.UID)
			}
			if err != nil {
				t.Logf("node %s: pod %s not admitted: %v", node, pod.Name, err)
				wrong += len(assignedOf(t, pod).Containers)
				continue
			}
			admitted += len(allocs)
			if w := checkAdmitted(t, pod, allocs); w > 0 {
				wrong += w
			} else {
				started = append(started, admittedPod{pod, allocs})
			}
		}
		if rng.IntN(15) == 0 {
			// The kubelet restarts with running pods: the agent registers
			// again, and every container must keep its own limits.
			// Counted before the restart: the plugin may register
			// again before Restart returns.
			before := kubelet.Registrations()
			if err := kubelet.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			registered = before + 1
			waitRegistered()
		}
	}
	// The end: after every agent and kubelet restart, each container
	// that started with its own limits still holds them (a resync that
	// rewrote a limits file wrongly would show here).
	for _, ap := range started {
		wrong += checkAdmitted(t, ap.pod, ap.allocs)
	}
	return wrong, admitted, restarts
}

// admittedPod is a pod the kubelet admitted and the containers it started.
type admittedPod struct {
	pod    *corev1.Pod
	allocs []fakekubelet.ContainerAllocation
}

// checkAdmitted counts the containers of pod whose GPUs or limits are not
// what its assignment names.
func checkAdmitted(t *testing.T, pod *corev1.Pod, allocs []fakekubelet.ContainerAllocation) int {
	assignment := assignedOf(t, pod)
	wrong := 0
	for _, a := range allocs {
		var want *annotations.ContainerAssignment
		for i := range assignment.Containers {
			if assignment.Containers[i].Name == a.Container {
				want = &assignment.Containers[i]
			}
		}
		got, err := observedLimits(a.Response)
		if err == nil && want != nil {
			err = sameLimits(*want, envGPUs(a.Response), got)
		}
		if err != nil {
			t.Logf("pod %s container %s: %v", pod.Name, a.Container, err)
			wrong++
		}
	}
	return wrong
}

// sameLimits checks that the GPUs a container sees are its assignment's and
// that each device's limits are the assigned ones.
func sameLimits(want annotations.ContainerAssignment, visible []string, got []observedDevice) error {
	var wantGPUs []string
	for _, d := range want.Devices {
		wantGPUs = append(wantGPUs, d.UUID)
	}
	if !sameGPUSet(wantGPUs, visible) {
		return fmt.Errorf("sees GPUs %v, assigned %v", visible, wantGPUs)
	}
	if len(got) != len(visible) {
		return fmt.Errorf("%d devices limited, sees %d", len(got), len(visible))
	}
	for i, g := range got {
		idx := slices.IndexFunc(want.Devices, func(d annotations.AssignedDevice) bool { return d.UUID == g.uuid })
		if g.uuid != visible[i] || idx < 0 {
			return fmt.Errorf("device %d: limits for %s, sees %s", i, g.uuid, visible[i])
		}
		if d := want.Devices[idx]; d.MemoryMiB != g.memoryMiB || d.Cores != g.cores {
			return fmt.Errorf("device %d (%s): limits %d MiB/%d%%, assigned %d MiB/%d%%", i, g.uuid, g.memoryMiB, g.cores, d.MemoryMiB, d.Cores)
		}
	}
	return nil
}

// observedDevice is one device's limits as the container's library sees
// them.
type observedDevice struct {
	uuid      string
	memoryMiB int64
	cores     int
}

func sameGPUSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// fastTempRoot is a tmpfs for the nodes' state when the machine has one:
// every Allocate and resolution creates and renames files, which on a busy
// disk cost milliseconds of system time each (most of this test's CPU),
// and on tmpfs microseconds. The code under test is the same either way.
func fastTempRoot() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "probe"); err == nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return ""
}
