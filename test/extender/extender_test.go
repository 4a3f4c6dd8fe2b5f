// Package extendere2e runs Tessera's scheduler extender with a real
// kube-apiserver and kube-scheduler (package test/cluster), and the device
// plugin behind a fake kubelet on every simulated node.
package extendere2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/extender"
)

const (
	nodeCount   = 100
	gpusPerNode = 8
	podCount    = 1000
	schedulerID = "tessera-scheduler"
)

// ctr is a container's Tessera request; a negative amount is left out.
type ctr struct {
	name            string
	gpus, mem, core int64
	init            bool
}

func newPod(name string, containers ...ctr) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec:       corev1.PodSpec{SchedulerName: schedulerID},
	}
	for _, c := range containers {
		rl := corev1.ResourceList{}
		for _, q := range []struct {
			name string
			v    int64
		}{{resources.VGPU, c.gpus}, {resources.Memory, c.mem}, {resources.Cores, c.core}} {
			if q.v >= 0 {
				rl[corev1.ResourceName(q.name)] = *resource.NewQuantity(q.v, resource.DecimalSI)
			}
		}
		k8sc := corev1.Container{Name: c.name, Image: "cuda", Resources: corev1.ResourceRequirements{Limits: rl, Requests: rl}}
		if c.init {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, k8sc)
		} else {
			pod.Spec.Containers = append(pod.Spec.Containers, k8sc)
		}
	}
	return pod
}

// workload is podCount pods that all fit the nodeCount*gpusPerNode GPUs
// (about a third of their memory and cores), in five shapes, plus pods that
// can never be placed.
func workload() (fit, never []*corev1.Pod) {
	for i := range podCount {
		name := fmt.Sprintf("job-%03d", i)
		switch i % 20 {
		case 0, 1, 2, 3, 4, 5, 6, 7, 8, 9:
			fit = append(fit, newPod(name, ctr{name: "main", gpus: 1, mem: 16 * gib, core: 20}))
		case 10, 11, 12, 13:
			fit = append(fit, newPod(name, ctr{name: "main", gpus: 2, mem: 40 * gib, core: 60}))
		case 14, 15, 16:
			fit = append(fit, newPod(name, ctr{name: "a", gpus: 1, mem: 8 * gib, core: 10}, ctr{name: "b", gpus: 1, mem: 8 * gib, core: -1}))
		case 17, 18:
			fit = append(fit, newPod(name, ctr{name: "main", gpus: 1, mem: -1, core: -1}))
		default:
			fit = append(fit, newPod(name, ctr{name: "setup", gpus: 1, mem: 4 * gib, core: -1, init: true}, ctr{name: "main", gpus: 1, mem: 4 * gib, core: 10}))
		}
	}
	never = []*corev1.Pod{
		newPod("too-big", ctr{name: "main", gpus: 1, mem: 100 * gib, core: -1}),
		newPod("memory-only", ctr{name: "main", gpus: -1, mem: 10 * gib, core: -1}),
		newPod("too-many-cores", ctr{name: "main", gpus: 1, mem: 10 * gib, core: 150}),
	}
	return fit, never
}

// TestExtenderPlacesPodsOnARealCluster: 100 nodes of 8 GPUs, 1,000 GPU pods
// submitted at once to a real kube-scheduler that uses the extender, which
// is restarted while the pods are being bound. Every pod must be bound with
// an assignment for its node, no GPU may exceed its memory, cores or slots,
// pods that can never fit stay Pending with the extender's reason, and the
// device plugin must hand every container exactly the GPUs its assignment
// names when a kubelet admits the pods in creation order.
func TestExtenderPlacesPodsOnARealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: builds (once, minutes) and starts real etcd, kube-apiserver and kube-scheduler (test/cluster)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()
	ports, port := holdPort(t)
	m := startSchedulerMember(ctx, t, "extender", schedulerConfig(t, port))
	client := m.Client()

	nodes := map[string]*gpuNode{}
	var gpus []vgpu.GPU
	for i := range nodeCount {
		n := addGPUNode(ctx, t, client, fmt.Sprintf("gpu-node-%02d", i), gpusPerNode)
		nodes[n.name] = n
		gpus = append(gpus, n.gpus...)
	}
	arrived := watchArrivals(ctx, t, client, slices.Sorted(maps.Keys(nodes)))
	first := startExtender(ctx, t, m.Kubeconfig(), ports, port, "")

	fit, never := workload()
	all := append(slices.Clone(fit), never...)
	// Restart the extender in the middle of the run: as soon as a tenth of
	// the pods are bound, while binds are in flight and pods are still
	// being created. A watch sees the binds within milliseconds;
	// kube-scheduler binds hundreds of pods a second.
	tenthBound := watchBound(ctx, t, client, len(fit)/10)
	created := time.Now()
	creating := createInBackground(ctx, client, all)
	select {
	case <-tenthBound:
	case <-time.After(5 * time.Minute):
		t.Fatalf("fewer than %d pods were bound within 5 minutes", len(fit)/10)
	}
	firstMetrics := first.scrape(ctx, t)
	first.stop(t)
	boundByFirst := countBound(ctx, t, client)
	if boundByFirst >= len(fit) {
		t.Fatalf("all %d pods were bound before the extender could be restarted; the restart was not tested", boundByFirst)
	}
	t.Logf("extender stopped with %d of %d pods bound; starting a new instance", boundByFirst, len(fit))
	second := startExtender(ctx, t, m.Kubeconfig(), ports, port, "")
	defer second.stop(t)
	for err := range creating {
		t.Fatal(err)
	}

	waitBound(ctx, t, client, len(fit), 8*time.Minute, 50*time.Millisecond)
	t.Logf("all %d pods bound %v after they were created, across one extender restart", len(fit), time.Since(created).Round(10*time.Millisecond))
	logBindOutcomes(t, len(fit), firstMetrics, second.scrape(ctx, t))
	pods := listPods(ctx, t, client)
	checkAssignments(t, pods, gpus)
	checkNeverFit(ctx, t, client, pods, map[string]string{
		"too-big":        "102400 MiB",
		"memory-only":    "without any vGPU",
		"too-many-cores": "more than 100% per GPU",
	})
	admitAll(ctx, t, client, nodes, pods, arrived)
}

// logBindOutcomes reports, summed over the extender instances, how binds
// ended and how often a bind was refused on a node its pod's filter had
// passed (a conflict: kube-scheduler then retries the pod after a backoff).
// The first instance is scraped just before its stop, so a bind it answers
// in between is missing from the sums: the successes counted are compared
// with the bound pods.
func logBindOutcomes(t *testing.T, bound int, instances ...map[string]float64) {
	t.Helper()
	sum := map[string]float64{}
	for _, m := range instances {
		for k, v := range m {
			sum[k] += v
		}
	}
	t.Logf("binds: %v succeeded (of %d pods bound), %v unfit, %v not_leader, %v api_error; bind conflicts (tessera_extender_bind_conflicts_total): %v; filters that waited for earlier binds: %v arrived, %v timed out",
		sum["tessera_extender_binds_total/"+extender.BindSucceeded], bound, sum["tessera_extender_binds_total/"+extender.BindUnfit],
		sum["tessera_extender_binds_total/"+extender.BindNotLeader], sum["tessera_extender_binds_total/"+extender.BindAPIError],
		sum["tessera_extender_bind_conflicts_total"],
		sum["tessera_extender_filter_bind_waits_total/"+extender.WaitArrived], sum["tessera_extender_filter_bind_waits_total/"+extender.WaitTimedOut])
}

// checkAssignments: every bound pod carries an assignment for its node, no
// slot is given twice, and no GPU exceeds its memory, cores or slots.
func checkAssignments(t *testing.T, pods []corev1.Pod, gpus []vgpu.GPU) {
	t.Helper()
	byUUID := map[string]vgpu.GPU{}
	for _, g := range gpus {
		byUUID[g.UUID] = g
	}
	used := map[string]vgpu.Usage{}
	slotOwner := map[string]string{}
	for i := range pods {
		pod := &pods[i]
		if pod.Spec.NodeName == "" {
			continue
		}
		a, err := annotations.DecodeAssignment(pod.Annotations[keys.Assignment])
		if err != nil || a.Node != pod.Spec.NodeName {
			t.Errorf("pod %s bound to %s: assignment %+v (%v)", pod.Name, pod.Spec.NodeName, a, err)
			continue
		}
		for _, c := range a.Containers {
			for _, d := range c.Devices {
				if !strings.HasPrefix(d.UUID, "GPU-"+pod.Spec.NodeName+"-") {
					t.Errorf("pod %s on %s is assigned GPU %s of another node", pod.Name, pod.Spec.NodeName, d.UUID)
				}
				used[d.UUID] = used[d.UUID].Add(vgpu.Usage{Slots: 1, MemoryMiB: d.MemoryMiB, Cores: d.Cores})
				if owner, dup := slotOwner[d.SlotID]; dup {
					t.Errorf("slot %s is given to %s and %s/%s", d.SlotID, owner, pod.Name, c.Name)
				}
				slotOwner[d.SlotID] = pod.Name + "/" + c.Name
			}
		}
	}
	for uuid, u := range used {
		g := byUUID[uuid]
		if u.Slots > g.Slots || u.MemoryMiB > g.MemoryMiB || u.Cores > g.Cores {
			t.Errorf("GPU %s is overcommitted: %+v of %d slots, %d MiB, %d%% cores", uuid, u, g.Slots, g.MemoryMiB, g.Cores)
		}
	}
	t.Logf("%d GPUs in use by %d containers", len(used), len(slotOwner))
}

// checkNeverFit: pods that fit nowhere stay Pending, and both the pod's
// PodScheduled condition and an event of the extender give the reason.
func checkNeverFit(ctx context.Context, t *testing.T, client kubernetes.Interface, pods []corev1.Pod, want map[string]string) {
	t.Helper()
	for i := range pods {
		pod := &pods[i]
		fragment, ok := want[pod.Name]
		if !ok {
			continue
		}
		if pod.Spec.NodeName != "" {
			t.Errorf("pod %s was bound to %s; it fits nowhere", pod.Name, pod.Spec.NodeName)
			continue
		}
		var msg string
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled {
				msg = c.Message
			}
		}
		if !strings.Contains(msg, fragment) {
			t.Errorf("pod %s: PodScheduled message %q lacks %q", pod.Name, msg, fragment)
		}
		// Events are written asynchronously: poll for a while.
		deadline := time.Now().Add(30 * time.Second)
		for {
			events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(events.Items, func(e corev1.Event) bool {
				return (e.Reason == extender.ReasonUnschedulable || e.Reason == extender.ReasonInvalidRequest) && strings.Contains(e.Message, fragment)
			}) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("pod %s has no extender event mentioning %q", pod.Name, fragment)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// kubeletsAtOnce bounds the simulated kubelets (and device plugins) running
// at one time (see startKubelet).
const kubeletsAtOnce = 8

// admitAll plays each node's kubelet: it starts the node's device plugin
// beside a fake kubelet, admits the node's pods in the kubelet's order
// (creation time, then arrival on the node) through the device plugin and
// checks that every container gets exactly the GPUs, in order, and the
// limits its assignment names.
func admitAll(ctx context.Context, t *testing.T, client kubernetes.Interface, nodes map[string]*gpuNode, pods []corev1.Pod, arrived *arrivals) {
	t.Helper()
	byNode := map[string][]*corev1.Pod{}
	for i := range pods {
		if n := pods[i].Spec.NodeName; n != "" {
			byNode[n] = append(byNode[n], &pods[i])
		}
	}
	dir := t.TempDir()
	sem := make(chan struct{}, kubeletsAtOnce)
	var wg sync.WaitGroup
	for name, nodePods := range byNode {
		slices.SortFunc(nodePods, func(a, b *corev1.Pod) int {
			return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(arrived.of(a.Name), arrived.of(b.Name)))
		})
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			kubelet, stop, err := startKubelet(ctx, client, nodes[name], filepath.Join(dir, name))
			if err != nil {
				t.Error(err)
				return
			}
			defer stop()
			for _, pod := range nodePods {
				allocs, err := kubelet.AdmitPod(ctx, pod)
				if err != nil {
					t.Errorf("node %s: %v", name, err)
					continue
				}
				checkAllocations(t, pod, allocs)
			}
		})
	}
	wg.Wait()
}

func checkAllocations(t *testing.T, pod *corev1.Pod, allocs []fakekubelet.ContainerAllocation) {
	t.Helper()
	a, err := annotations.DecodeAssignment(pod.Annotations[keys.Assignment])
	if err != nil {
		t.Errorf("pod %s: %v", pod.Name, err)
		return
	}
	if len(allocs) != len(a.Containers) {
		t.Errorf("pod %s: %d containers admitted, %d assigned", pod.Name, len(allocs), len(a.Containers))
	}
	for _, alloc := range allocs {
		c, ok := a.Container(alloc.Container)
		if !ok {
			t.Errorf("pod %s: container %s was admitted without an assignment", pod.Name, alloc.Container)
			continue
		}
		env := alloc.Response.GetEnvs()
		var uuids []string
		for _, d := range c.Devices {
			uuids = append(uuids, d.UUID)
		}
		// The limits file, as the interception library reads it; the
		// kubelet started the container (PreStartContainer) once written.
		limits, ok, err := deviceplugin.ContainerLimits(alloc.Response)
		if err != nil || !ok || limits.Refused != "" || len(limits.Devices) != len(c.Devices) {
			t.Errorf("pod %s/%s: limits %+v (written %t, %v), want %d devices", pod.Name, c.Name, limits, ok, err, len(c.Devices))
		} else {
			for i, got := range limits.Devices {
				j := slices.IndexFunc(c.Devices, func(d annotations.AssignedDevice) bool { return d.UUID == got.UUID })
				if j < 0 || got.MemoryMiB != c.Devices[j].MemoryMiB || got.CorePercent != c.Devices[j].Cores {
					t.Errorf("pod %s/%s device %d: limits %+v, assigned %+v", pod.Name, c.Name, i, got, c.Devices)
				}
			}
		}
		if got := env[deviceplugin.VisibleDevicesEnv]; got != strings.Join(uuids, ",") {
			t.Errorf("pod %s/%s got GPUs %q, its assignment names %q", pod.Name, c.Name, got, strings.Join(uuids, ","))
		}
		var slotGPUs []string
		for _, id := range alloc.Devices {
			uuid, _, err := vgpu.ParseSlotID(id)
			if err != nil {
				t.Errorf("pod %s/%s: kubelet device %q: %v", pod.Name, c.Name, id, err)
			}
			slotGPUs = append(slotGPUs, uuid)
		}
		if !slices.Equal(slices.Sorted(slices.Values(slotGPUs)), slices.Sorted(slices.Values(uuids))) {
			t.Errorf("pod %s/%s: kubelet allocated slots of %v, assignment names %v", pod.Name, c.Name, slotGPUs, uuids)
		}
	}
}
