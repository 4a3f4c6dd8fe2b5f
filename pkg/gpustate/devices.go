// Package gpustate turns Kubernetes objects into the inputs of Tessera's fit
// algorithm (package vgpu): a node's GPUs with what assigned pods already use
// on them, and a pod's (or a Karmada replica's) GPU request.
//
// It reads only objects handed to it and makes no API calls, so that the
// Karmada estimator (fed by informers) and the scheduler extender (fed by
// kube-scheduler) derive exactly the same state from the same objects.
package gpustate

import (
	"fmt"
	"math"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// PodError is a pod whose GPU assignment could not be (fully) counted.
type PodError struct {
	// Pod is "namespace/name".
	Pod string
	Err error
}

func (e PodError) Error() string { return fmt.Sprintf("pod %s: %v", e.Pod, e.Err) }

func (e PodError) Unwrap() error { return e.Err }

// NodeDevices returns the node's GPUs with the usage of every non-terminal
// pod whose assignment annotation names this node. A node without an
// inventory annotation has no GPUs (nil, nil); an undecodable inventory is an
// error naming the node. Pods whose assignment cannot be read are logged by
// name and counted as using only what can be proven (see
// NodeDevicesWithPodErrors).
func NodeDevices(node *corev1.Node, pods []*corev1.Pod, keys annotations.Keys) ([]vgpu.DeviceState, error) {
	devices, podErrs, err := NodeDevicesWithPodErrors(node, pods, keys)
	for _, pe := range podErrs {
		klog.ErrorS(pe.Err, "Pod's GPU assignment is not counted", "pod", pe.Pod, "node", node.Name)
	}
	return devices, err
}

// NodeDevicesWithPodErrors is NodeDevices that returns the per-pod problems
// instead of logging them, for callers that log once per change. A pod
// whose assignment does not decode is counted as using nothing: its claim
// cannot be proven, and refusing to estimate the whole node for one bad pod
// would hide every good GPU on it. A device of a decodable assignment that
// is not on this node is skipped and reported; the pod's other devices count.
func NodeDevicesWithPodErrors(node *corev1.Node, pods []*corev1.Pod, keys annotations.Keys) ([]vgpu.DeviceState, []PodError, error) {
	gpus, err := nodeInventory(node, keys)
	if gpus == nil || err != nil {
		return nil, nil, err
	}
	var podErrs []PodError
	assigned := make([]AssignedPod, 0, len(pods))
	for _, pod := range pods {
		if pod == nil || IsTerminal(pod) {
			continue
		}
		a, found, err := PodAssignment(pod, keys)
		switch {
		case err != nil:
			podErrs = append(podErrs, PodError{Pod: podName(pod), Err: err})
		case found:
			assigned = append(assigned, AssignedPod{Name: podName(pod), Assignment: a})
		}
	}
	devices, errs := applyAssignments(node.Name, gpus, assigned)
	return devices, append(podErrs, errs...), nil
}

// AssignedPod is a non-terminal pod's decoded assignment.
type AssignedPod struct {
	// Name is "namespace/name".
	Name       string
	Assignment annotations.Assignment
}

// NodeDevicesAssigned is NodeDevicesWithPodErrors for callers that have
// decoded the pods' assignments already (the fleet view decodes each pod
// once and uses it several times). Assignments naming another node are
// skipped.
func NodeDevicesAssigned(node *corev1.Node, assigned []AssignedPod, keys annotations.Keys) ([]vgpu.DeviceState, []PodError, error) {
	gpus, err := nodeInventory(node, keys)
	if gpus == nil || err != nil {
		return nil, nil, err
	}
	devices, podErrs := applyAssignments(node.Name, gpus, assigned)
	return devices, podErrs, nil
}

// nodeInventory decodes the node's GPU inventory; nil without an error for
// a node that publishes none.
func nodeInventory(node *corev1.Node, keys annotations.Keys) ([]vgpu.GPU, error) {
	if node == nil {
		return nil, fmt.Errorf("read GPU state: node is nil")
	}
	raw, ok := node.Annotations[keys.Inventory]
	if !ok {
		return nil, nil
	}
	inv, err := annotations.DecodeInventory(raw)
	if err != nil {
		return nil, fmt.Errorf("read GPU inventory of node %s: %w", node.Name, err)
	}
	if inv.GPUs == nil {
		return []vgpu.GPU{}, nil // an inventory of no GPUs is still Tessera's node
	}
	return inv.GPUs, nil
}

// applyAssignments is the node's GPUs with the usage of every assignment
// that names the node. A device that is not on the node is reported; the
// pod's other devices count.
func applyAssignments(nodeName string, gpus []vgpu.GPU, assigned []AssignedPod) ([]vgpu.DeviceState, []PodError) {
	devices := make([]vgpu.DeviceState, len(gpus))
	byUUID := make(map[string]int, len(gpus))
	for i, g := range gpus {
		devices[i] = vgpu.DeviceState{GPU: g}
		byUUID[g.UUID] = i
	}
	var podErrs []PodError
	for _, ap := range assigned {
		if ap.Assignment.Node != nodeName {
			continue
		}
		for _, c := range ap.Assignment.Containers {
			for _, d := range c.Devices {
				i, ok := byUUID[d.UUID]
				if !ok {
					podErrs = append(podErrs, PodError{Pod: ap.Name, Err: fmt.Errorf(
						"container %q is assigned GPU %s, which node %s does not have", c.Name, d.UUID, nodeName)})
					continue
				}
				devices[i].Used = addUsage(devices[i].Used, vgpu.Usage{Slots: 1, MemoryMiB: d.MemoryMiB, Cores: d.Cores})
			}
		}
	}
	return devices, podErrs
}

// PodAssignment decodes a pod's assignment annotation; found is false when
// the pod has none.
func PodAssignment(pod *corev1.Pod, keys annotations.Keys) (a annotations.Assignment, found bool, err error) {
	raw, ok := pod.Annotations[keys.Assignment]
	if !ok {
		return annotations.Assignment{}, false, nil
	}
	a, err = annotations.DecodeAssignment(raw)
	if err != nil {
		return annotations.Assignment{}, true, fmt.Errorf("annotation %s: %w", keys.Assignment, err)
	}
	return a, true, nil
}

// IsTerminal reports whether the pod has finished and holds no resources.
func IsTerminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

// addUsage saturates memory instead of wrapping: an absurd figure in one
// annotation must make the GPU look full, never free again. Slots grow by
// one per assigned device and cores are bounded by the codec, so neither can
// wrap with any number of pods a node can hold.
func addUsage(u, o vgpu.Usage) vgpu.Usage {
	mem := u.MemoryMiB + o.MemoryMiB
	if o.MemoryMiB > 0 && mem < u.MemoryMiB {
		mem = math.MaxInt64
	}
	return vgpu.Usage{Slots: u.Slots + o.Slots, MemoryMiB: mem, Cores: u.Cores + o.Cores}
}

func podName(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }
