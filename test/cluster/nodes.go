package cluster

import (
	"context"
	"fmt"
	"maps"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// defaultNodeCapacity fills what a caller of AddNode leaves out: without
// "pods" in allocatable kube-scheduler finds no room for even one pod.
func defaultNodeCapacity() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("8"),
		corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// nodeLeaseSeconds is the lease duration a kubelet uses by default.
const nodeLeaseSeconds = 40

// AddNode creates a Node that kube-scheduler treats as a healthy, empty
// kubelet node, since a test cluster has no kubelet:
//   - labels: the caller's, over kubernetes.io/hostname, kubernetes.io/os
//     and kubernetes.io/arch as a kubelet sets them;
//   - status: capacity and allocatable both set to capacity (cpu 8, memory
//     32Gi and pods 110 when absent), conditions Ready=True and no pressure,
//     address 127.0.0.1, so nothing that follows a node address leaves loopback;
//   - no not-ready taint: the TaintNodesByCondition admission plugin puts one
//     on every new Node and only the node lifecycle controller would take it
//     off; AddNode removes it itself;
//   - a Lease in kube-node-lease, as a kubelet would hold.
//
// Nothing renews the Ready condition or the lease afterwards, which is why
// StartMember disables the node lifecycle controller (see DefaultControllers).
func AddNode(ctx context.Context, client kubernetes.Interface, name string, capacity corev1.ResourceList, labels map[string]string) (*corev1.Node, error) {
	allLabels := map[string]string{
		corev1.LabelHostname:   name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
	}
	maps.Copy(allLabels, labels)
	resources := defaultNodeCapacity()
	maps.Copy(resources, capacity)

	node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: allLabels},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}

	now := metav1.Now()
	condition := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	status := corev1.NodeStatus{
		Capacity:    resources.DeepCopy(),
		Allocatable: resources.DeepCopy(),
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{
			condition(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
			condition(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			condition(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			condition(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: loopback},
			{Type: corev1.NodeHostName, Address: name},
		},
		NodeInfo: corev1.NodeSystemInfo{OperatingSystem: "linux", Architecture: "amd64", KubeletVersion: "v1.35.4"},
	}
	// Controllers (ttl, for one) update a new Node at once: on a conflict,
	// read it again and set the status on the fresh copy.
	retried := false
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if retried {
			fresh, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			node = fresh
		}
		retried = true
		node.Status = *status.DeepCopy()
		updated, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			node = updated
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("set status of node %s: %w", name, err)
	}

	// The taint may be on the object already or be added by a controller
	// racing with us; retry on conflicts with a fresh read.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		kept := current.Spec.Taints[:0:0]
		for _, taint := range current.Spec.Taints {
			if taint.Key != corev1.TaintNodeNotReady {
				kept = append(kept, taint)
			}
		}
		if len(kept) == len(current.Spec.Taints) {
			node = current
			return nil
		}
		current.Spec.Taints = kept
		node, err = client.CoreV1().Nodes().Update(ctx, current, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("remove taint %s from node %s: %w", corev1.TaintNodeNotReady, name, err)
	}

	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: corev1.NamespaceNodeLease,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1", Kind: "Node", Name: name, UID: node.UID,
			}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(name),
			LeaseDurationSeconds: ptr.To[int32](nodeLeaseSeconds),
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	// kube-apiserver creates kube-node-lease shortly after it reports
	// ready, so a node added at once may have to wait for the namespace.
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Create(ctx, lease, metav1.CreateOptions{})
		switch {
		case err == nil, apierrors.IsAlreadyExists(err):
			return true, nil
		case apierrors.IsNotFound(err):
			return false, nil
		default:
			return false, err
		}
	})
	if err != nil {
		return nil, fmt.Errorf("create lease of node %s: %w", name, err)
	}
	return node, nil
}
