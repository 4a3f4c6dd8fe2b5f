package estimator

import (
	"cmp"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/karmada-io/karmada/pkg/estimator"
	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/util/lifted"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Requirement is one replica's demands, parsed once per request: Karmada's
// wire form (quantities as bytes, selectors as bytes) is decoded here so
// that the per-node loop only compares integers.
type Requirement struct {
	Resources ResourceDemand
	// GPU is the fit algorithm's request; AsksForGPUs is false when the
	// replica names no Tessera resource.
	GPU         vgpu.PodRequest
	AsksForGPUs bool
	nodeClaim
}

// nodeClaim is where a replica may land: its required node affinity (node
// selector included) and tolerations, decoded by Karmada's own helpers.
type nodeClaim struct {
	affinity    nodeaffinity.RequiredNodeAffinity
	tolerations []corev1.Toleration
	// anyNode is set when the claim has no node selector and no required
	// affinity: then only taints can exclude a node.
	anyNode bool
}

// parseNodeClaim decodes a claim as Karmada's plugins do
// (estimator.GetAffinityAndTolerations).
func parseNodeClaim(claim *pb.NodeClaim) (nodeClaim, error) {
	var c nodeClaim
	var err error
	if c.affinity, c.tolerations, err = estimator.GetAffinityAndTolerations(claim); err != nil {
		return nodeClaim{}, fmt.Errorf("decode node claim: %w", err)
	}
	affinity, err := claim.UnmarshalNodeAffinity()
	if err != nil {
		return nodeClaim{}, fmt.Errorf("decode node affinity: %w", err)
	}
	c.anyNode = len(claim.GetNodeSelector()) == 0 && affinity == nil
	return c, nil
}

// ResourceDemand is what one replica takes of a node's ordinary resources,
// read the way Karmada's own noderesource plugin reads them
// (util.Resource.MaxDivided): cpu, memory, ephemeral storage and every
// scalar resource (extended resources, Tessera's included, and hugepages).
// Zero amounts are no demand; every replica also takes one pod.
type ResourceDemand struct {
	MilliCPU, Memory, EphemeralStorage int64
	Scalars                            []ScalarDemand
}

// ScalarDemand is an amount of one scalar resource.
type ScalarDemand struct {
	Name  corev1.ResourceName
	Value int64
}

// ParseReplicaRequirements reads a MaxAvailableReplicas request's
// requirements through Karmada's pb helpers (never the deprecated fields
// directly). A nil requirement asks only for a pod slot.
func ParseReplicaRequirements(rr *pb.ReplicaRequirements, cfg config.Config) (Requirement, error) {
	rl, err := rr.UnmarshalResourceRequest()
	if err != nil {
		return Requirement{}, fmt.Errorf("decode resource request: %w", err)
	}
	return parseRequirement(rr.GetNodeClaim(), rl, cfg)
}

// ParseComponentRequirements is ParseReplicaRequirements for one component
// of a multi-component workload.
func ParseComponentRequirements(cr *pb.ComponentReplicaRequirements, cfg config.Config) (Requirement, error) {
	rl, err := cr.UnmarshalResourceRequest()
	if err != nil {
		return Requirement{}, fmt.Errorf("decode resource request: %w", err)
	}
	return parseRequirement(cr.GetNodeClaim(), rl, cfg)
}

func parseRequirement(claim *pb.NodeClaim, rl corev1.ResourceList, cfg config.Config) (Requirement, error) {
	var r Requirement
	var err error
	if r.Resources, err = newResourceDemand(rl); err != nil {
		return Requirement{}, err
	}
	if r.GPU, r.AsksForGPUs, err = gpustate.RequestFromResources(rl, cfg); err != nil {
		return Requirement{}, err
	}
	if r.nodeClaim, err = parseNodeClaim(claim); err != nil {
		return Requirement{}, err
	}
	return r, nil
}

func newResourceDemand(rl corev1.ResourceList) (ResourceDemand, error) {
	for name, q := range rl {
		if q.Sign() < 0 {
			return ResourceDemand{}, fmt.Errorf("resource %s has a negative quantity %s", name, q.String())
		}
	}
	return demandOf(rl), nil
}

// demandOf reads rl as Karmada's util.Resource reads a request: positive
// amounts of cpu, memory, ephemeral storage and scalar resources; other
// names (a bare "pods", unknown unprefixed names) are ignored, as Karmada's
// noderesource plugin ignores them.
func demandOf(rl corev1.ResourceList) ResourceDemand {
	var d ResourceDemand
	for name, q := range rl {
		switch {
		case name == corev1.ResourceCPU:
			d.MilliCPU = max(q.MilliValue(), 0)
		case name == corev1.ResourceMemory:
			d.Memory = max(q.Value(), 0)
		case name == corev1.ResourceEphemeralStorage:
			d.EphemeralStorage = max(q.Value(), 0)
		case lifted.IsScalarResourceName(name):
			if v := q.Value(); v > 0 {
				d.Scalars = append(d.Scalars, ScalarDemand{Name: name, Value: v})
			}
		}
	}
	slices.SortFunc(d.Scalars, func(a, b ScalarDemand) int { return cmp.Compare(a.Name, b.Name) })
	return d
}
