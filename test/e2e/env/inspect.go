package env

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Binding is the ResourceBinding Karmada made for a Deployment (Karmada
// names it <deployment>-deployment), nil while it does not exist.
func (e *Env) Binding(ctx context.Context, namespace, deployment string) (*workv1alpha2.ResourceBinding, error) {
	rb, err := e.karmada.KarmadaClient().WorkV1alpha2().ResourceBindings(namespace).Get(ctx, deployment+"-deployment", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get ResourceBinding of Deployment %s/%s: %w", namespace, deployment, err)
	}
	return rb, nil
}

// Placement is how many replicas the binding gives each cluster (absent: 0).
func Placement(rb *workv1alpha2.ResourceBinding) map[string]int32 {
	out := map[string]int32{}
	if rb == nil {
		return out
	}
	for _, c := range rb.Spec.Clusters {
		out[c.Name] += c.Replicas
	}
	return out
}

// Replica is one pod of a workload in a member, as a person would want to
// see it: where it is, whether it runs, and what Tessera did for it.
type Replica struct {
	Cluster, Namespace, Name string
	UID                      types.UID
	// Node is where kube-scheduler bound it; "" while Pending.
	Node  string
	Phase corev1.PodPhase
	Ready bool
	// Why says why it is not running: the scheduler's (and so the
	// extender's) message, or the kubelet's admission failure.
	Why string
	// Assignment is the extender's choice of GPUs; nil when it made none.
	Assignment *annotations.Assignment
	// AssignmentErr is set when the pod's assignment annotation is unreadable.
	AssignmentErr error
	// Allocated lists the containers the device plugin has served.
	Allocated []string
}

// Replicas lists the pods of app=<app> in the member, oldest first.
func (m *Member) Replicas(ctx context.Context, namespace, app string, keys annotations.Keys) ([]Replica, error) {
	list, err := m.Client().CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.SelectorFromSet(labels.Set{AppLabel: app}).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s/%s in %s: %w", namespace, app, m.name, err)
	}
	pods := list.Items
	slices.SortFunc(pods, func(a, b corev1.Pod) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	out := make([]Replica, 0, len(pods))
	for i := range pods {
		out = append(out, replicaOf(m.name, &pods[i], keys))
	}
	return out, nil
}

func replicaOf(cluster string, pod *corev1.Pod, keys annotations.Keys) Replica {
	r := Replica{Cluster: cluster, Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		Node: pod.Spec.NodeName, Phase: pod.Status.Phase, Why: pod.Status.Message}
	for _, c := range pod.Status.Conditions {
		switch {
		case c.Type == corev1.PodReady:
			r.Ready = c.Status == corev1.ConditionTrue
		case c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && r.Why == "":
			r.Why = c.Message
		}
	}
	if a, found, err := gpustate.PodAssignment(pod, keys); err != nil {
		r.AssignmentErr = err
	} else if found {
		r.Assignment = &a
	}
	if raw, ok := pod.Annotations[keys.Allocated]; ok {
		if a, err := annotations.DecodeAllocated(raw); err == nil {
			r.Allocated = a.Containers
		}
	}
	return r
}

// GPUView is one GPU of a member as the extender and the estimator see it:
// its capacity minus what the pods assigned to it use.
type GPUView struct {
	Node string
	vgpu.DeviceState
}

// GPUViews reads the member's Nodes and pods and returns every GPU, by
// node then index.
func (m *Member) GPUViews(ctx context.Context, keys annotations.Keys) ([]GPUView, error) {
	nodes, err := m.Client().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes of %s: %w", m.name, err)
	}
	pods, err := m.Client().CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", m.name, err)
	}
	byNode := map[string][]*corev1.Pod{}
	for i := range pods.Items {
		p := &pods.Items[i]
		byNode[p.Spec.NodeName] = append(byNode[p.Spec.NodeName], p)
	}
	slices.SortFunc(nodes.Items, func(a, b corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	var out []GPUView
	for i := range nodes.Items {
		node := &nodes.Items[i]
		devices, _, err := gpustate.NodeDevicesWithPodErrors(node, byNode[node.Name], keys)
		if err != nil {
			return nil, fmt.Errorf("GPUs of node %s in %s: %w", node.Name, m.name, err)
		}
		slices.SortFunc(devices, func(a, b vgpu.DeviceState) int { return cmp.Compare(a.Index, b.Index) })
		for _, d := range devices {
			out = append(out, GPUView{Node: node.Name, DeviceState: d})
		}
	}
	return out, nil
}
