package deviceplugin

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/hookenv"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// node8x10Pods places containers on 8 GPUs x 10 slots as the extender
// would: 1 or 2 distinct GPUs each, one free slot per GPU, memory and cores
// varying per container. Pods have one or two containers; creation times
// increase with the pod number.
func node8x10Pods(containers int, seed uint64) []*corev1.Pod {
	rng := rand.New(rand.NewPCG(seed, 0))
	nextSlot := make([]int, 8)
	var pods []*corev1.Pod
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < containers; {
		var cs []testContainer
		for c := 0; c < 1+i%4/3 && i < containers; c++ { // Every fourth pod has two containers.
			want := 1 + rng.IntN(2)
			var slots []string
			for _, g := range rng.Perm(8) {
				if len(slots) < want && nextSlot[g] < 10 {
					slots = append(slots, vgpu.SlotID(gpuUUID(g), nextSlot[g]))
					nextSlot[g]++
				}
			}
			if len(slots) < want {
				panic("the test node is full")
			}
			cs = append(cs, testContainer{name: fmt.Sprintf("c%d", c), slots: slots, mem: int64(1024 * (1 + i%7)), cores: 10 * (1 + i%5)})
			i++
		}
		pods = append(pods, podSpec(fmt.Sprintf("pod-%03d", len(pods)), base.Add(time.Duration(len(pods))*time.Second), testNode, true, cs...))
	}
	return pods
}

// assignedOf decodes a test pod's assignment.
func assignedOf(t testing.TB, pod *corev1.Pod) annotations.Assignment {
	a, err := annotations.DecodeAssignment(pod.Annotations[annotations.DefaultKeys().Assignment])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// kubeletChoice is the slots the kubelet offers for each container: the
// assigned ones for even containers, and for odd ones other slots of the
// same GPUs (a cyclic shift among the slots that even containers do not
// hold), so that every slot is still offered at most once.
func kubeletChoice(t testing.TB, pods []*corev1.Pod) map[string][]string {
	type user struct {
		key  string
		slot int
	}
	exactSlots := map[string]map[int]bool{}
	shifted := map[string][]user{}
	choice := map[string][]string{}
	n := 0
	for _, pod := range pods {
		for _, c := range assignedOf(t, pod).Containers {
			key := string(pod.UID) + "/" + c.Name
			for _, d := range c.Devices {
				_, s, _ := vgpu.ParseSlotID(d.SlotID)
				if n%2 == 0 {
					choice[key] = append(choice[key], d.SlotID)
					if exactSlots[d.UUID] == nil {
						exactSlots[d.UUID] = map[int]bool{}
					}
					exactSlots[d.UUID][s] = true
				} else {
					shifted[d.UUID] = append(shifted[d.UUID], user{key, s})
				}
			}
			n++
		}
	}
	for uuid, users := range shifted {
		var rest []int
		for s := range 10 {
			if !exactSlots[uuid][s] {
				rest = append(rest, s)
			}
		}
		for _, u := range users {
			i := slices.Index(rest, u.slot)
			choice[u.key] = append(choice[u.key], vgpu.SlotID(uuid, rest[(i+1)%len(rest)]))
		}
	}
	return choice
}

// identity is "<pod UID>/<container>" of the allocation a response mounts,
// once the kubelet's record has named it.
func identity(t testing.TB, stateDir string, r *pluginapi.ContainerAllocateResponse) string {
	t.Helper()
	rel, err := filepath.Rel(filepath.Join(stateDir, allocationsDirName), regionMount(r))
	if err != nil || strings.Count(rel, "/") != 1 || filepath.Base(rel) != allocRegionDirName {
		t.Fatalf("region mount %q is not <state>/allocations/<key>/region", regionMount(r))
	}
	store := allocStore{stateDir: stateDir}
	var owner *ownerRecord
	deadline := time.Now().Add(waitTimeout)
	for owner == nil || owner.ID != r.GetEnvs()[hookenv.AllocationID] {
		if time.Now().After(deadline) {
			t.Fatalf("allocation %s was not resolved", filepath.Dir(rel))
		}
		time.Sleep(5 * time.Millisecond)
		_, owner, _ = store.load(filepath.Dir(rel))
	}
	return owner.PodUID + "/" + owner.Container
}

// checkResponse asserts that a response gives exactly the container's
// assigned GPUs and, once resolved, its limits.
func checkResponse(t testing.TB, c annotations.ContainerAssignment, r *pluginapi.ContainerAllocateResponse) {
	t.Helper()
	var l hookenv.Limits
	deadline := time.Now().Add(waitTimeout)
	for {
		got, ok, err := ContainerLimits(r)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			l = got
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s: no limits", c.Name)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if l.Refused != "" {
		t.Fatalf("container %s refused: %s", c.Name, l.Refused)
	}
	var got []observedDevice
	for _, d := range l.Devices {
		got = append(got, observedDevice{uuid: d.UUID, memoryMiB: d.MemoryMiB, cores: d.CorePercent})
	}
	if err := sameLimits(c, envGPUs(r), got); err != nil {
		t.Errorf("container %s: %v", c.Name, err)
	}
}

// TestConcurrentAllocationsServeEachContainerOnce: 50 Allocates in flight
// at once, in random order, half of them for other slots of the assigned
// GPUs; each container gets its own limits, named by the kubelet's record.
func TestConcurrentAllocationsServeEachContainerOnce(t *testing.T) {
	pods := node8x10Pods(50, 7)
	objects := make([]runtime.Object, len(pods))
	assigned := map[string]annotations.ContainerAssignment{}
	podOf := map[string]*corev1.Pod{}
	for i, pod := range pods {
		objects[i] = pod
		podOf[string(pod.UID)] = pod
		for _, c := range assignedOf(t, pod).Containers {
			assigned[string(pod.UID)+"/"+c.Name] = c
		}
	}
	if len(assigned) != 50 {
		t.Fatalf("test setup: %d containers, want 50", len(assigned))
	}
	h := newHarness(t, newFakeGPUs(8, 10), objects...)
	h.startPlugin(1)
	choice := kubeletChoice(t, pods)

	var mu sync.Mutex
	served := map[string]int{}
	var wg sync.WaitGroup
	for key, slots := range choice {
		wg.Go(func() {
			resp, err := h.kubelet.Allocate(h.ctx, slots)
			if err != nil {
				t.Errorf("Allocate %v (for %s): %v", slots, key, err)
				return
			}
			uid, container, _ := strings.Cut(key, "/")
			h.kubelet.Record(podOf[uid], container, slots)
			who := identity(t, h.opts.StateDir, resp)
			if who != key {
				t.Errorf("Allocate %v for %s resolved to %s", slots, key, who)
			}
			c, ok := assigned[who]
			if !ok {
				t.Errorf("Allocate %v served unknown container %s", slots, who)
				return
			}
			checkResponse(t, c, resp)
			var gpus []string
			for _, id := range slots {
				uuid, _, _ := vgpu.ParseSlotID(id)
				gpus = append(gpus, uuid)
			}
			slices.Sort(gpus)
			if want := gpusOf(c); !slices.Equal(gpus, want) {
				t.Errorf("slots %v (GPUs %v) served container %s of GPUs %v", slots, gpus, who, want)
			}
			mu.Lock()
			served[who]++
			mu.Unlock()
		})
	}
	wg.Wait()
	for key := range assigned {
		if served[key] != 1 {
			t.Errorf("container %s served %d times, want once", key, served[key])
		}
	}
	// Every pod's Allocated annotation ends up naming all its containers.
	for _, pod := range pods {
		want := len(assignedOf(t, pod).Containers)
		eventually(t, "Allocated annotation of "+pod.Name, func() bool {
			got, err := h.client.CoreV1().Pods("default").Get(h.ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false
			}
			a, err := annotations.DecodeAllocated(got.Annotations[annotations.DefaultKeys().Allocated])
			return err == nil && len(a.Containers) == want
		})
	}
}

// gpusOf is the sorted GPU list of an assignment.
func gpusOf(c annotations.ContainerAssignment) []string {
	var out []string
	for _, d := range c.Devices {
		out = append(out, d.UUID)
	}
	slices.Sort(out)
	return out
}

func TestKubeletChoosingOtherSlotsOfTheSameGPUs(t *testing.T) {
	g0, g1 := gpuUUID(0), gpuUUID(1)
	s := vgpu.SlotID
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Two pods assigned one slot of GPU 0 each, older first; one pod with
	// two GPUs.
	older := podSpec("older", t0, testNode, true, testContainer{name: "c", slots: []string{s(g0, 0)}, mem: 1000})
	younger := podSpec("younger", t0.Add(time.Second), testNode, true, testContainer{name: "c", slots: []string{s(g0, 1)}, mem: 2000})
	pair := podSpec("pair", t0.Add(2*time.Second), testNode, true, testContainer{name: "c", slots: []string{s(g1, 0), s(g0, 2)}, mem: 3000})
	tests := []struct {
		name     string
		requests [][]string // in order
		want     []string   // pod served by each request
	}{
		{"exact slots", [][]string{{s(g0, 1)}, {s(g0, 0)}, {s(g0, 2), s(g1, 0)}}, []string{"younger", "older", "pair"}},
		{"other slots of one GPU, older first", [][]string{{s(g0, 5)}, {s(g0, 6)}}, []string{"older", "younger"}},
		// The case age matching could not decide: the younger pod first.
		{"other slots of one GPU, younger first", [][]string{{s(g0, 5)}, {s(g0, 6)}}, []string{"younger", "older"}},
		{"another pod's exact slots", [][]string{{s(g0, 0)}, {s(g0, 1)}}, []string{"younger", "older"}},
		{"other slots of two GPUs", [][]string{{s(g0, 8), s(g1, 9)}}, []string{"pair"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newFakeGPUs(2, 10), older.DeepCopy(), younger.DeepCopy(), pair.DeepCopy())
			h.startPlugin(1)
			byName := map[string]*corev1.Pod{"older": older, "younger": younger, "pair": pair}
			for i, req := range tc.requests {
				resp, err := h.kubelet.Allocate(h.ctx, req)
				if err != nil {
					t.Fatalf("Allocate %v: %v", req, err)
				}
				h.kubelet.Record(byName[tc.want[i]], "c", req) // The kubelet's truth.
				checkResponse(t, assignedOf(t, byName[tc.want[i]]).Containers[0], resp)
				if got, want := identity(t, h.opts.StateDir, resp), "uid-"+tc.want[i]+"/c"; got != want {
					t.Errorf("Allocate %v served %s, want %s", req, got, want)
				}
			}
		})
	}
}

func TestAdmitPodsLikeTheKubelet(t *testing.T) {
	g0 := gpuUUID(0)
	s := vgpu.SlotID
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		// slots of GPU 0 (of 3) held by the kubelet for a pod the plugin
		// does not know, which the extender's assignment did not see.
		held []string
		// assigned is the slot the extender gave the pod.
		assigned      string
		wantPreferred bool
		wantSlots     []string
	}{
		{"more free than needed: preferred gives the assigned slot", nil, s(g0, 2), true, []string{s(g0, 2)}},
		{"assigned slot taken: preferred picks another slot of its GPU", []string{s(g0, 0)}, s(g0, 0), true, []string{s(g0, 1)}},
		{"exactly enough free: the kubelet picks alone", []string{s(g0, 0), s(g0, 2)}, s(g0, 0), false, []string{s(g0, 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := podSpec("p", t0, testNode, true, testContainer{name: "c", slots: []string{tc.assigned}, mem: 4096, cores: 25})
			h := newHarness(t, newFakeGPUs(1, 3), pod)
			h.startPlugin(1)
			if tc.held != nil {
				if err := h.kubelet.Reserve("checkpointed/c", tc.held); err != nil {
					t.Fatal(err)
				}
			}
			allocs, err := h.kubelet.AdmitPod(h.ctx, pod)
			if err != nil {
				t.Fatal(err)
			}
			if len(allocs) != 1 {
				t.Fatalf("got %d allocations, want 1", len(allocs))
			}
			a := allocs[0]
			if a.Preferred != tc.wantPreferred || !slices.Equal(a.Devices, tc.wantSlots) {
				t.Errorf("kubelet used preferred=%v slots %v, want preferred=%v slots %v", a.Preferred, a.Devices, tc.wantPreferred, tc.wantSlots)
			}
			checkResponse(t, assignedOf(t, pod).Containers[0], a.Response)
			if got := identity(t, h.opts.StateDir, a.Response); got != "uid-p/c" {
				t.Errorf("served %s, want uid-p/c", got)
			}
		})
	}
}

func TestAdmitManyPodsInCreationOrder(t *testing.T) {
	pods := node8x10Pods(50, 11)
	objects := make([]runtime.Object, len(pods))
	for i, pod := range pods {
		objects[i] = pod
	}
	h := newHarness(t, newFakeGPUs(8, 10), objects...)
	h.startPlugin(1)
	slots := 0
	for _, pod := range pods {
		for _, c := range assignedOf(t, pod).Containers {
			slots += len(c.Devices)
		}
		allocs, err := h.kubelet.AdmitPod(h.ctx, pod)
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range allocs {
			c := assignedOf(t, pod).Containers[i]
			checkResponse(t, c, a.Response)
			if got, want := identity(t, h.opts.StateDir, a.Response), string(pod.UID)+"/"+c.Name; got != want {
				t.Errorf("pod %s container %s: served %s", pod.Name, c.Name, got)
			}
		}
	}
	if got := len(h.kubelet.InUse()); got != slots {
		t.Errorf("%d slots in use after admitting every container, want %d", got, slots)
	}
}

// TestInitContainersResolvedByTheirExactSlots: PodResources never lists
// ordinary init containers, so an allocation no listed container holds is
// resolved to the init container, of a pod the kubelet lists, that is
// assigned exactly its slots; the regular container after it through the
// kubelet's record as usual.
func TestInitContainersResolvedByTheirExactSlots(t *testing.T) {
	g0, g1 := gpuUUID(0), gpuUUID(1)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	pod := podSpec("p", t0, testNode, true,
		testContainer{name: "init", slots: []string{vgpu.SlotID(g0, 0)}, mem: 2048, cores: 10},
		testContainer{name: "main", slots: []string{vgpu.SlotID(g1, 0)}, mem: 8192, cores: 50})
	pod.Spec.InitContainers, pod.Spec.Containers = pod.Spec.Containers[:1], pod.Spec.Containers[1:]
	h := newHarness(t, newFakeGPUs(2, 4), pod)
	h.startPlugin(1)
	allocs, err := h.kubelet.AdmitPod(h.ctx, pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != 2 || allocs[0].Container != "init" || allocs[1].Container != "main" {
		t.Fatalf("admitted %+v, want init then main", allocs)
	}
	for i, a := range allocs {
		checkResponse(t, assignedOf(t, pod).Containers[i], a.Response)
		if got, want := identity(t, h.opts.StateDir, a.Response), "uid-p/"+a.Container; got != want {
			t.Errorf("served %s, want %s", got, want)
		}
	}
}
