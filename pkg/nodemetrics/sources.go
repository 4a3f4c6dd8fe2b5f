// Package nodemetrics is the node agent's Prometheus collector: per GPU, what
// the node offers and what assigned pods hold; per container, its limits and
// what its processes really use, read from the shared usage region that the
// CUDA interception library keeps.
//
// Every value is computed at scrape time from the current state of the
// node's GPUs, its pods and their usage regions, so a deleted pod's series
// disappear at the next scrape and a new pod's series appear as soon as its
// assignment annotation is on a pod bound to the node, before any of its
// processes has touched the GPU (HAMi's issue #281 is the opposite).
//
// Label names follow NVIDIA's dcgm-exporter where they mean the same thing
// (UUID, gpu, modelName, Hostname, namespace, pod, container), so that
// Tessera's series join dcgm-exporter's in one PromQL expression.
package nodemetrics

import (
	"errors"
	"fmt"
	"io/fs"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// GPUSource yields the node's GPUs with their current health
// (*gpu.Tracker is one).
type GPUSource interface {
	GPUs() []vgpu.GPU
}

// AssignedPod is a pod on this node with its decoded GPU assignment.
type AssignedPod struct {
	Namespace string
	Name      string
	// UID names the pod's region directories.
	UID        string
	Assignment annotations.Assignment
}

// Reasons a pod is left out of the metrics, the values of the
// tessera_node_pods_skipped "reason" label.
const (
	// SkipUndecodableAssignment: the assignment annotation does not decode.
	SkipUndecodableAssignment = "undecodable_assignment"
	// SkipOtherNode: the assignment names another node than the one the
	// pod is bound to; the device plugin refuses such a pod too.
	SkipOtherNode = "assignment_for_other_node"
	// SkipInvalidAssignment: the assignment decodes but cannot be reported
	// without clashing series (a container named twice).
	SkipInvalidAssignment = "invalid_assignment"
	// SkipDuplicatePod: the pod source listed the same pod twice.
	SkipDuplicatePod = "duplicate_pod"
)

// skipReasons lists every reason, so each has a series (at 0) from the start.
func skipReasons() []string {
	return []string{SkipUndecodableAssignment, SkipOtherNode, SkipInvalidAssignment, SkipDuplicatePod}
}

// SkippedPod is a pod whose assignment could not be reported.
type SkippedPod struct {
	// Pod is "namespace/name".
	Pod    string
	Reason string
	Err    error
}

// PodSource yields the pods on this node that hold GPUs: non-terminal pods
// bound to the node with an assignment annotation for it.
type PodSource interface {
	AssignedPods() ([]AssignedPod, []SkippedPod, error)
}

// ListerPods is a PodSource over a pod lister (an informer's cache, usually
// filtered to spec.nodeName=NodeName). It decodes assignments with the same
// code as the extender and the estimator (pkg/gpustate), so the three agree
// on what a pod holds.
type ListerPods struct {
	Lister   corelisters.PodLister
	Keys     annotations.Keys
	NodeName string
}

// AssignedPods lists the pods and decodes their assignments.
func (l ListerPods) AssignedPods() ([]AssignedPod, []SkippedPod, error) {
	pods, err := l.Lister.List(labels.Everything())
	if err != nil {
		return nil, nil, fmt.Errorf("list pods of node %s: %w", l.NodeName, err)
	}
	assigned, skipped := AssignedPodsOf(pods, l.Keys, l.NodeName)
	return assigned, skipped, nil
}

// AssignedPodsOf picks, from pods, the non-terminal ones bound to node that
// carry an assignment annotation, and decodes the assignments.
func AssignedPodsOf(pods []*corev1.Pod, keys annotations.Keys, node string) ([]AssignedPod, []SkippedPod) {
	var assigned []AssignedPod
	var skipped []SkippedPod
	for _, pod := range pods {
		if pod == nil || pod.Spec.NodeName != node || gpustate.IsTerminal(pod) {
			continue
		}
		name := pod.Namespace + "/" + pod.Name
		a, found, err := gpustate.PodAssignment(pod, keys)
		switch {
		case err != nil:
			skipped = append(skipped, SkippedPod{Pod: name, Reason: SkipUndecodableAssignment, Err: err})
			continue
		case !found:
			continue
		case a.Node != node:
			skipped = append(skipped, SkippedPod{Pod: name, Reason: SkipOtherNode,
				Err: fmt.Errorf("assignment is for node %q but the pod is bound to node %q", a.Node, node)})
			continue
		}
		assigned = append(assigned, AssignedPod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), Assignment: a})
	}
	return assigned, skipped
}

// RegionSnapshot is what one container's shared usage region said when it
// was read.
type RegionSnapshot struct {
	// Processes is the number of processes using the container's GPUs
	// (holding memory or having launched kernels). A process that died
	// keeps its record until another process of the container reclaims
	// it, so this may briefly count dead processes.
	Processes int
	// Devices are the container's devices in CUDA ordinal order.
	Devices []RegionDevice
}

// RegionDevice is one device's usage in a region.
type RegionDevice struct {
	// UUID is the GPU the hook recorded; empty when it recorded none, and
	// the device is then matched to the assignment by ordinal.
	UUID string
	// UsedBytes is the memory held by the container's live processes.
	UsedBytes uint64
	// KernelLaunches counts the launches the hook paced. It drops when a
	// dead process's record is reclaimed, which Prometheus treats as a
	// counter reset.
	KernelLaunches uint64
	// BusySeconds is the GPU time the hook measured for the launches it
	// paced (so only on a device with a core cap; 0 elsewhere). Like
	// KernelLaunches it drops, a counter reset, when a process exits or a
	// dead process's record is reclaimed.
	BusySeconds float64
}

// RegionReader reads the usage region of one container. It returns an
// error that satisfies errors.Is(err, fs.ErrNotExist) when the container has
// no region file, and a zero RegionSnapshot for a region no process has
// initialised yet: both mean the container has not used its GPUs, which the
// collector reports as zero use, not as missing series.
type RegionReader func(podUID, container string) (RegionSnapshot, error)

// noRegionYet reports whether err only says that the region does not exist.
func noRegionYet(err error) bool { return errors.Is(err, fs.ErrNotExist) }
