package nodepublish

import (
	"encoding/json"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// desiredState is what the Node should carry for a given set of GPUs.
type desiredState struct {
	inventory string
	memory    resource.Quantity
	cores     resource.Quantity
	// percent is 100 per healthy GPU: HAMi's gpumem-percentage, published
	// under the HAMi profile only.
	percent resource.Quantity
	gpus    int
	healthy int
}

// computeDesired derives the annotation and the extended resources from the
// tracker's GPUs. GPUs are ordered by index (then UUID) so that the same set
// always encodes to the same string, whatever order the tracker returns.
func computeDesired(gpus []vgpu.GPU) (desiredState, error) {
	sorted := slices.Clone(gpus)
	slices.SortFunc(sorted, func(a, b vgpu.GPU) int {
		if a.Index != b.Index {
			return a.Index - b.Index
		}
		switch {
		case a.UUID < b.UUID:
			return -1
		case a.UUID > b.UUID:
			return 1
		}
		return 0
	})
	if sorted == nil {
		// An empty inventory is "gpus": [], never null, so that readers
		// can tell "no GPUs" from a malformed value.
		sorted = []vgpu.GPU{}
	}
	inv, err := annotations.EncodeInventory(annotations.Inventory{GPUs: sorted})
	if err != nil {
		return desiredState{}, err
	}
	var memMiB, cores int64
	healthy := 0
	for _, g := range sorted {
		// An unhealthy GPU offers nothing: the device plugin withdraws its
		// slots, so its memory and cores must not be schedulable either.
		if !g.Healthy {
			continue
		}
		healthy++
		memMiB += g.MemoryMiB
		cores += int64(g.Cores)
	}
	return desiredState{
		inventory: inv,
		memory:    *resource.NewQuantity(memMiB, resource.DecimalSI),
		cores:     *resource.NewQuantity(cores, resource.DecimalSI),
		percent:   *resource.NewQuantity(int64(healthy)*100, resource.DecimalSI),
		gpus:      len(sorted),
		healthy:   healthy,
	}, nil
}

// names are the Node fields the publisher owns.
type names struct {
	inventoryKey string
	memory       corev1.ResourceName
	cores        corev1.ResourceName
	// hami also publishes HAMi's memory, cores and memory-percentage
	// resources: kube-scheduler and Karmada's general estimator refuse a pod
	// that asks for a resource no node has, so HAMi's pods need them.
	hami bool
}

// resources are the extended resources the Node should carry.
func (n names) resources(d desiredState) map[corev1.ResourceName]resource.Quantity {
	out := map[corev1.ResourceName]resource.Quantity{n.memory: d.memory, n.cores: d.cores}
	if n.hami {
		out[config.HAMiMemory], out[config.HAMiCores], out[config.HAMiMemoryPercent] = d.memory, d.cores, d.percent
	}
	return out
}

// annotationCurrent reports whether the node already carries the inventory.
func (n names) annotationCurrent(node *corev1.Node, d desiredState) bool {
	got, ok := node.Annotations[n.inventoryKey]
	return ok && got == d.inventory
}

// resourcesCurrent reports whether both capacity and allocatable carry the
// desired memory and cores.
func (n names) resourcesCurrent(node *corev1.Node, d desiredState) bool {
	for _, list := range []corev1.ResourceList{node.Status.Capacity, node.Status.Allocatable} {
		for name, want := range n.resources(d) {
			got, ok := list[name]
			if !ok || got.Cmp(want) != 0 {
				return false
			}
		}
	}
	return true
}

// current reports whether the node needs no patch at all.
func (n names) current(node *corev1.Node, d desiredState) bool {
	return n.annotationCurrent(node, d) && n.resourcesCurrent(node, d)
}

// annotationPatch is a JSON merge patch that sets only the inventory key,
// leaving every other annotation alone.
func (n names) annotationPatch(d desiredState) ([]byte, error) {
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]string{n.inventoryKey: d.inventory}}}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("build annotation patch: %w", err)
	}
	return b, nil
}

// resourcesPatch is a JSON merge patch for the status subresource. It sets
// capacity and allocatable alike: a cluster without a kubelet (a test
// cluster, a virtual node) never copies capacity into allocatable, and
// kube-scheduler and Karmada read allocatable.
func (n names) resourcesPatch(d desiredState) ([]byte, error) {
	list := map[corev1.ResourceName]string{}
	for name, q := range n.resources(d) {
		list[name] = q.String()
	}
	patch := map[string]any{"status": map[string]any{"capacity": list, "allocatable": list}}
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("build resources patch: %w", err)
	}
	return b, nil
}
