package env

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// The headline scenario, shared by the end-to-end tests and `make demo`.
const (
	// BusyMember has 8 GPUs, each mostly used: plenty of memory free in
	// total, but no single GPU with HeadlineMemoryMiB free.
	BusyMember = "member-a"
	// IdleMember has 2 empty 80 GiB GPUs.
	IdleMember = "member-b"
	// HeadlineNamespace holds the headline workload and the fillers.
	HeadlineNamespace = "default"
	// HeadlineMemoryMiB is what one headline replica asks for (40 GiB).
	HeadlineMemoryMiB = 40 * 1024
	// BusyFreeMiB is what each of BusyMember's GPUs keeps free once filled:
	// 32 GiB, less than one replica, 256 GiB over the member's 8 GPUs.
	BusyFreeMiB = 32 * 1024
	// FillerApp labels the pods that use BusyMember's GPUs.
	FillerApp = "filler"
)

// HeadlineMembers is the headline topology: BusyMember with two nodes of
// four A100 80GB GPUs, IdleMember with one node of two H100 80GB GPUs.
func HeadlineMembers() []MemberSpec {
	return []MemberSpec{
		{Name: BusyMember, Nodes: []NodeSpec{
			{GPUs: []config.MockGPU{{Model: "A100-SXM4-80GB", Count: 4}}},
			{GPUs: []config.MockGPU{{Model: "A100-SXM4-80GB", Count: 4}}},
		}},
		{Name: IdleMember, Nodes: []NodeSpec{
			{GPUs: []config.MockGPU{{Model: "H100-SXM5-80GB", Count: 2}}},
		}},
	}
}

// HeadlineWorkload is 4 replicas of 1 vGPU with 40 GiB each.
func HeadlineWorkload() Workload {
	return Workload{Namespace: HeadlineNamespace, Name: "inference", Replicas: 4,
		Request: GPURequest{GPUs: 1, MemoryMiB: HeadlineMemoryMiB}}
}

// FillGPUs uses every healthy GPU of a member that has more than keepFreeMiB
// free, with one pod per GPU (pinned to it by the gpu-uuid-include option)
// taking the difference, through the real path: kube-scheduler, the
// extender, the kubelet and the device plugin. It returns once they all
// run, and how many it made.
func (e *Env) FillGPUs(ctx context.Context, member string, keepFreeMiB int64, app string, timeout time.Duration) (int, error) {
	m := e.Member(member)
	if m == nil {
		return 0, fmt.Errorf("fill GPUs: no member %q", member)
	}
	keys := e.cfg.Keys()
	views, err := m.GPUViews(ctx, keys)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, v := range views {
		free := v.Free().MemoryMiB
		if !v.Healthy || free <= keepFreeMiB {
			continue
		}
		pod := GPUPod(HeadlineNamespace, "", app, GPURequest{GPUs: 1, MemoryMiB: free - keepFreeMiB}, e.cfg.Resources)
		pod.GenerateName = app + "-"
		pod.Annotations = map[string]string{keys.GPUUUIDInclude: v.UUID}
		created, err := m.Client().CoreV1().Pods(HeadlineNamespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			return 0, fmt.Errorf("fill GPU %s of %s: create pod: %w", v.UUID, member, err)
		}
		names = append(names, created.Name)
	}
	err = Eventually(ctx, timeout, fmt.Sprintf("%d %s pods to run in %s", len(names), app, member), func(ctx context.Context) (bool, string, error) {
		replicas, err := m.Replicas(ctx, HeadlineNamespace, app, keys)
		if err != nil {
			return false, err.Error(), nil
		}
		running := 0
		var notYet []string
		for _, r := range replicas {
			if !slices.Contains(names, r.Name) {
				continue
			}
			if r.Phase == corev1.PodRunning && r.Ready {
				running++
			} else {
				notYet = append(notYet, fmt.Sprintf("%s %s %s", r.Name, r.Phase, r.Why))
			}
		}
		return running == len(names), fmt.Sprintf("%d running; %s", running, strings.Join(notYet, "; ")), nil
	})
	return len(names), err
}

// WaitClusterSummary waits until Karmada's Cluster for member counts the
// member's GPU memory requests as they are now (allocated: bound pods that
// have not ended; allocating: pods not yet bound), which Karmada refreshes
// every 10 seconds. Karmada's general estimator reads that summary.
func (e *Env) WaitClusterSummary(ctx context.Context, member string, timeout time.Duration) error {
	m := e.Member(member)
	if m == nil {
		return fmt.Errorf("wait for cluster summary: no member %q", member)
	}
	memory := corev1.ResourceName(e.cfg.Resources.Memory)
	return Eventually(ctx, timeout, fmt.Sprintf("Karmada's summary of %s to count its %s requests", member, memory), func(ctx context.Context) (bool, string, error) {
		pods, err := m.Client().CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		var allocated, allocating int64
		for i := range pods.Items {
			p := &pods.Items[i]
			switch {
			case p.Spec.NodeName == "":
				allocating += podRequest(p, memory)
			case p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed:
				allocated += podRequest(p, memory)
			}
		}
		c, err := e.karmada.KarmadaClient().ClusterV1alpha1().Clusters().Get(ctx, member, metav1.GetOptions{})
		if err != nil || c.Status.ResourceSummary == nil {
			return false, fmt.Sprintf("no summary yet (%v)", err), nil
		}
		s := c.Status.ResourceSummary
		gotAllocated, gotAllocating := s.Allocated[memory], s.Allocating[memory]
		state := fmt.Sprintf("summary allocated %s, allocating %s; pods request %d and %d",
			gotAllocated.String(), gotAllocating.String(), allocated, allocating)
		return gotAllocated.Value() == allocated && gotAllocating.Value() == allocating, state, nil
	})
}

// podRequest sums one resource over the pod's containers' requests.
func podRequest(p *corev1.Pod, name corev1.ResourceName) int64 {
	var total resource.Quantity
	for _, c := range p.Spec.Containers {
		if q, ok := c.Resources.Requests[name]; ok {
			total.Add(q)
		}
	}
	return total.Value()
}

// WaitPlacement waits until Karmada's binding of the Deployment gives
// each cluster exactly the replicas in want (clusters absent from want: 0).
func (e *Env) WaitPlacement(ctx context.Context, namespace, deployment string, want map[string]int32, timeout time.Duration) error {
	return Eventually(ctx, timeout, fmt.Sprintf("Karmada to place Deployment %s/%s as %v", namespace, deployment, want), func(ctx context.Context) (bool, string, error) {
		rb, err := e.Binding(ctx, namespace, deployment)
		if err != nil {
			return false, err.Error(), nil
		}
		if rb == nil {
			return false, "no ResourceBinding yet", nil
		}
		got := Placement(rb)
		return maps.Equal(got, want), fmt.Sprintf("placement %v, conditions %s", got, DescribeConditions(rb.Status.Conditions)), nil
	})
}

// DescribeConditions renders conditions as "Type=Status (Reason: Message)".
func DescribeConditions(conds []metav1.Condition) string {
	parts := make([]string, 0, len(conds))
	for _, c := range conds {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "; ")
}

// AllReplicas lists a workload's pods in every member, by member name.
func (e *Env) AllReplicas(ctx context.Context, namespace, app string) (map[string][]Replica, error) {
	out := map[string][]Replica{}
	for _, m := range e.members {
		rs, err := m.Replicas(ctx, namespace, app, e.cfg.Keys())
		if err != nil {
			return nil, err
		}
		out[m.name] = rs
	}
	return out, nil
}
