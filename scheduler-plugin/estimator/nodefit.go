package estimator

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/karmada-io/karmada/pkg/estimator"
	schedulerframework "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// clusterView pairs the nodes of Karmada's scheduler snapshot (ordinary
// resources, labels, taints: exactly what Karmada's own plugins see) with
// the GPU state of the same nodes from the GPU cache, by position.
type clusterView struct {
	nodes []*schedulerframework.NodeInfo
	table *nodeTable
}

// devices returns node i's GPUs; nil for a node that has none, that the GPU
// cache has not seen yet, or whose inventory does not decode.
func (v *clusterView) devices(i int) []vgpu.DeviceState {
	if s := v.table.devices(i); s != nil {
		return s.Devices
	}
	return nil
}

// matches reports whether a replica may land on the node at all: node
// selector, required node affinity and tolerations, decided by Karmada's own
// helpers so that Tessera and the stock plugins agree on the node set.
func (r *nodeClaim) matches(ni *schedulerframework.NodeInfo) bool {
	// The common case answers without Karmada's helpers, with the same
	// result: no selector or affinity, and nothing a toleration could be
	// needed for.
	if node := ni.Node(); r.anyNode && node != nil && len(node.Spec.Taints) == 0 && !node.Spec.Unschedulable {
		return true
	}
	return estimator.MatchNode(ni, r.affinity, r.tolerations)
}

// copiesOn is the per-node minimum: how many replicas fit on the node by
// its ordinary resources and, for a GPU request, by the exact GPU fit.
// taken is what a simulation has already placed there (nil for nothing).
func (r *Requirement) copiesOn(ni *schedulerframework.NodeInfo, devices []vgpu.DeviceState, taken *taken) int64 {
	n := resourceCopies(ni, taken, &r.Resources)
	if n == 0 || !r.AsksForGPUs {
		return n
	}
	return min(n, int64(vgpu.MaxReplicas(devices, r.GPU)))
}

// taken is what a simulation has placed on a node on top of the pods the
// snapshot knows about.
type taken struct {
	milliCPU, memory, ephemeralStorage, pods int64
	scalars                                  map[corev1.ResourceName]int64
}

func (t *taken) add(d *ResourceDemand, copies int64) {
	t.milliCPU += d.MilliCPU * copies
	t.memory += d.Memory * copies
	t.ephemeralStorage += d.EphemeralStorage * copies
	t.pods += copies
	for _, s := range d.Scalars {
		if t.scalars == nil {
			t.scalars = map[corev1.ResourceName]int64{}
		}
		t.scalars[s.Name] += s.Value * copies
	}
}

// resourceCopies is Karmada's per-node answer (allocatable minus requested,
// divided by the demand, bounded by the free pod count) computed without
// cloning the NodeInfo, which is most of what the stock plugin spends.
func resourceCopies(ni *schedulerframework.NodeInfo, t *taken, d *ResourceDemand) int64 {
	alloc, req := ni.Allocatable, ni.Requested
	if alloc == nil {
		return 0
	}
	if t == nil {
		t = &taken{}
	}
	var reqCPU, reqMem, reqEph, reqPods int64
	if req != nil {
		reqCPU, reqMem, reqEph, reqPods = req.MilliCPU, req.Memory, req.EphemeralStorage, req.AllowedPodNumber
	}
	// Karmada's order: the pods Requested holds (never any in practice),
	// clamped, then the pods listed.
	n := max(max(alloc.AllowedPodNumber-reqPods, 0)-int64(len(ni.Pods))-t.pods, 0)
	n = divideFree(n, alloc.MilliCPU, reqCPU+t.milliCPU, d.MilliCPU)
	n = divideFree(n, alloc.Memory, reqMem+t.memory, d.Memory)
	n = divideFree(n, alloc.EphemeralStorage, reqEph+t.ephemeralStorage, d.EphemeralStorage)
	for _, s := range d.Scalars {
		var used int64
		if req != nil {
			used = req.ScalarResources[s.Name]
		}
		n = divideFree(n, alloc.ScalarResources[s.Name], used+t.scalars[s.Name], s.Value)
	}
	return n
}

// divideFree bounds n by how many demands fit in what is free; a zero
// demand puts no bound.
func divideFree(n, allocatable, used, demand int64) int64 {
	if demand <= 0 || n == 0 {
		return n
	}
	return min(n, max(allocatable-used, 0)/demand)
}
