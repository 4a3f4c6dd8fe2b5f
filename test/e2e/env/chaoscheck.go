package env

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Findings is what a check of the whole environment found: Violations
// must never happen (a GPU over its capacity, a slot given twice, a
// container on GPUs or limits other than its assignment's); Unsettled may
// be true for a while after a fault and must end (replicas missing or
// extra, a pod waiting without a reason, an estimate that is not exact).
type Findings struct {
	Violations, Unsettled []string
	// Summary says what was checked: per workload Karmada's placement and
	// per member its replicas and the estimator's answer.
	Summary []string
}

// Clean says nothing was found.
func (f Findings) Clean() bool { return len(f.Violations) == 0 && len(f.Unsettled) == 0 }

func (f *Findings) violation(format string, args ...any) {
	f.Violations = append(f.Violations, fmt.Sprintf(format, args...))
}

func (f *Findings) unsettled(format string, args ...any) {
	f.Unsettled = append(f.Unsettled, fmt.Sprintf(format, args...))
}

// memberState is one member's Nodes, pods and Deployments, listed once.
type memberState struct {
	nodes       []corev1.Node
	pods        []*corev1.Pod // every pod, terminal ones included
	deployments map[string]int32
}

func (m *Member) listState(ctx context.Context) (memberState, error) {
	nodes, err := m.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return memberState{}, fmt.Errorf("list nodes of %s: %w", m.name, err)
	}
	pods, err := m.Client().CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return memberState{}, fmt.Errorf("list pods of %s: %w", m.name, err)
	}
	deployments, err := m.Client().AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return memberState{}, fmt.Errorf("list deployments of %s: %w", m.name, err)
	}
	s := memberState{nodes: nodes.Items, deployments: map[string]int32{}}
	for _, d := range deployments.Items {
		s.deployments[d.Namespace+"/"+d.Name] = ptr.Deref(d.Spec.Replicas, 1)
	}
	for i := range pods.Items {
		s.pods = append(s.pods, &pods.Items[i])
	}
	return s, nil
}

// CheckChaos checks every workload and every member as they are now:
// Karmada placed each workload's replicas or says why not; each member
// runs exactly the replicas Karmada gave it, each Running and Ready or
// Pending with the scheduler's reason, none stuck terminating or admitted
// but not running; no GPU is over its slots, memory or cores and no slot
// is given twice; every running container got its assignment's GPUs and
// limits from the device plugin; and each member's Tessera estimator
// answers every workload's shape exactly as ExactEstimate computes it from
// the member's Nodes and pods.
func (e *Env) CheckChaos(ctx context.Context, workloads []Workload) (Findings, error) {
	var f Findings
	bindings := map[string]*workv1alpha2.ResourceBinding{}
	for _, w := range workloads {
		rb, err := e.Binding(ctx, w.Namespace, w.Name)
		if err != nil {
			return f, err
		}
		bindings[w.Name] = rb
		placed := int32(0)
		for _, n := range Placement(rb) {
			placed += n
		}
		f.Summary = append(f.Summary, fmt.Sprintf("%s: Karmada placed %v of %d", w.Name, Placement(rb), w.Replicas))
		if placed != w.Replicas {
			cond := (*metav1.Condition)(nil)
			if rb != nil {
				cond = meta.FindStatusCondition(rb.Status.Conditions, workv1alpha2.Scheduled)
			}
			if cond == nil || cond.Status != metav1.ConditionFalse || cond.Message == "" {
				f.unsettled("%s: Karmada placed %d of %d replicas without saying why (binding %v)", w.Name, placed, w.Replicas, rb != nil)
			}
		}
	}
	for _, m := range e.members {
		s, err := m.listState(ctx)
		if err != nil {
			return f, err
		}
		for _, w := range workloads {
			m.checkReplicas(&f, s, w, Placement(bindings[w.Name])[m.name])
		}
		m.checkGPUs(&f, s)
		if err := m.checkEstimates(ctx, &f, s, workloads); err != nil {
			return f, err
		}
	}
	return f, nil
}

// checkReplicas: the member runs exactly the replicas Karmada gave it, and
// each is Running and Ready, or Pending unbound with a reason.
func (m *Member) checkReplicas(f *Findings, s memberState, w Workload, want int32) {
	keys := m.env.cfg.Keys()
	active, running, ended := 0, 0, 0
	firstEnded := ""
	defer func() {
		line := fmt.Sprintf("%s: %s %d running, %d waiting", m.name, w.Name, running, active-running)
		if ended > 0 {
			line += fmt.Sprintf("; %d ended and were replaced by the ReplicaSet, the first: %s", ended, firstEnded)
		}
		f.Summary = append(f.Summary, line)
	}()
	for _, pod := range s.pods {
		if pod.Namespace != w.Namespace || pod.Labels[AppLabel] != w.Name {
			continue
		}
		r := replicaOf(m.name, pod, keys)
		switch {
		case pod.DeletionTimestamp != nil:
			f.unsettled("%s/%s is still terminating", m.name, pod.Name)
			continue
		case gpustate.IsTerminal(pod):
			if r.Why == "" {
				f.unsettled("%s/%s ended %s without a reason", m.name, pod.Name, pod.Status.Phase)
			}
			if ended++; ended == 1 {
				firstEnded = fmt.Sprintf("%s %s: %s", pod.Name, pod.Status.Phase, r.Why)
			}
			continue
		}
		active++
		switch {
		case r.Phase == corev1.PodRunning && r.Ready:
			running++
			m.checkContainer(f, pod, r)
		case r.Phase == corev1.PodPending && r.Node == "" && r.Why != "":
		default:
			f.unsettled("%s/%s is %s on node %q (ready %t) with reason %q", m.name, pod.Name, r.Phase, r.Node, r.Ready, r.Why)
		}
	}
	if applied, ok := s.deployments[w.Namespace+"/"+w.Name]; want > 0 && (!ok || applied != want) {
		f.unsettled("%s: Karmada gave it %d replicas of %s, its Deployment asks for %d (exists %t): Karmada has not applied the member's Work yet",
			m.name, want, w.Name, applied, ok)
	}
	if active != int(want) {
		f.unsettled("%s: %s has %d replicas, Karmada gave it %d", m.name, w.Name, active, want)
	}
}

// checkContainer: the running container got from the device plugin the
// GPUs of its assignment (its slot IDs name them) and, in its limits file,
// the assignment's memory and cores on each, and the device plugin
// recorded it as served on the pod.
func (m *Member) checkContainer(f *Findings, pod *corev1.Pod, r Replica) {
	node := m.Node(r.Node)
	if node == nil || r.Assignment == nil || r.Assignment.Node != r.Node {
		f.violation("%s/%s runs on %q with assignment %+v (%v)", m.name, pod.Name, r.Node, r.Assignment, r.AssignmentErr)
		return
	}
	allocs, rejected, seen := node.Admission(pod.UID)
	if !seen || rejected != "" {
		f.violation("%s/%s runs but its kubelet admitted it: seen %t, rejected %q", m.name, pod.Name, seen, rejected)
		return
	}
	for _, alloc := range allocs {
		c, ok := r.Assignment.Container(alloc.Container)
		if !ok {
			f.violation("%s/%s: container %s got devices %v but has no assignment", m.name, pod.Name, alloc.Container, alloc.Devices)
			continue
		}
		var assigned, got []string
		want := map[string]vgpu.Usage{}
		for _, d := range c.Devices {
			assigned = append(assigned, d.UUID)
			want[d.UUID] = vgpu.Usage{MemoryMiB: d.MemoryMiB, Cores: d.Cores}
		}
		for _, id := range alloc.Devices {
			uuid, _, err := vgpu.ParseSlotID(id)
			if err != nil {
				f.violation("%s/%s: container %s got device %q: %v", m.name, pod.Name, alloc.Container, id, err)
			}
			got = append(got, uuid)
		}
		slices.Sort(assigned)
		slices.Sort(got)
		if !slices.Equal(assigned, got) {
			f.violation("%s/%s: container %s runs on GPUs %v, its assignment names %v", m.name, pod.Name, alloc.Container, got, assigned)
			continue
		}
		if !slices.Contains(r.Allocated, alloc.Container) {
			f.unsettled("%s/%s: container %s runs but the pod's %s annotation does not record it as served", m.name, pod.Name, alloc.Container, m.env.cfg.Keys().Allocated)
		}
		limits, written, err := deviceplugin.ContainerLimits(alloc.Response)
		switch {
		case err != nil:
			f.violation("%s/%s: container %s: limits: %v", m.name, pod.Name, alloc.Container, err)
		case !written:
			f.unsettled("%s/%s: container %s runs without its limits file yet", m.name, pod.Name, alloc.Container)
		case limits.Refused != "":
			f.violation("%s/%s: container %s was refused: %s", m.name, pod.Name, alloc.Container, limits.Refused)
		default:
			for _, d := range limits.Devices {
				if u, ok := want[d.UUID]; !ok || u.MemoryMiB != d.MemoryMiB || u.Cores != d.CorePercent {
					f.violation("%s/%s: container %s has limits %+v on %s, its assignment %+v", m.name, pod.Name, alloc.Container, d, d.UUID, u)
				}
			}
		}
	}
}

// checkGPUs: no GPU holds more than it has, and no slot is assigned to two
// live pods.
func (m *Member) checkGPUs(f *Findings, s memberState) {
	keys := m.env.cfg.Keys()
	for i := range s.nodes {
		node := &s.nodes[i]
		devices, podErrs, err := gpustate.NodeDevicesWithPodErrors(node, s.pods, keys)
		if err != nil || len(podErrs) > 0 {
			f.violation("%s: node %s: %v %v", m.name, node.Name, err, podErrs)
		}
		for _, d := range devices {
			if d.Used.MemoryMiB > d.MemoryMiB || d.Used.Slots > d.Slots || d.Used.Cores > d.Cores {
				f.violation("%s: GPU %s on %s is overcommitted: uses %+v of %d MiB, %d slots, %d cores", m.name, d.UUID, node.Name, d.Used, d.MemoryMiB, d.Slots, d.Cores)
			}
		}
	}
	slots := map[string]string{}
	for _, pod := range s.pods {
		a, found, err := gpustate.PodAssignment(pod, keys)
		if err != nil || !found || gpustate.IsTerminal(pod) {
			continue // an undecodable one is reported above
		}
		for _, c := range a.Containers {
			for _, d := range c.Devices {
				if other, dup := slots[d.SlotID]; dup {
					f.violation("%s: slot %s is assigned to both %s and %s", m.name, d.SlotID, other, pod.Name)
				}
				slots[d.SlotID] = pod.Name
			}
		}
	}
}

// MonitorGPUs checks every member's GPUs as checkGPUs does (no GPU over
// its capacity, no slot assigned to two live pods) every interval, so that
// an overcommit that ends before the run does (one of the pods failed or
// was deleted) is seen too. A member that cannot be read is skipped that
// time (its API server may be down on purpose). stop ends the monitor and
// returns each distinct violation seen.
func (e *Env) MonitorGPUs(ctx context.Context, every time.Duration) (stop func() []string) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	seen := map[string]bool{}
	var found []string
	go func() {
		defer close(done)
		ticker := time.NewTicker(every)
		defer ticker.Stop()
		for {
			for _, m := range e.members {
				s, err := m.listState(ctx)
				if err != nil {
					continue
				}
				var f Findings
				m.checkGPUs(&f, s)
				for _, v := range f.Violations {
					if !seen[v] {
						seen[v] = true
						found = append(found, time.Now().Format(time.TimeOnly)+" "+v)
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			}
		}
	}()
	return func() []string {
		cancel()
		<-done
		return found
	}
}
