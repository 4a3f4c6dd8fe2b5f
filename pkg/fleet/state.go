package fleet

import (
	"cmp"
	"slices"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
)

// State is one read of the fleet: the view, and what Fit needs to answer
// over the same data.
type State struct {
	Fleet   Fleet
	members map[string]*memberState
	// clusters are Karmada's Cluster objects, for its general estimate.
	clusters map[string]*clusterv1alpha1.Cluster
	cfg      config.Config
}

// MemberInput is one member's objects, for building a State from objects
// already at hand (tests, benchmarks) instead of reading them.
type MemberInput struct {
	// Cluster is Karmada's Cluster object of the member.
	Cluster *clusterv1alpha1.Cluster
	// Nodes and Pods are the member's nodes and non-terminal pods.
	Nodes []*corev1.Node
	Pods  []*corev1.Pod
	// Err marks the member unreachable for this reason; Nodes and Pods
	// are then ignored.
	Err error
}

// NewState builds the fleet's state from its members' objects, exactly as
// a Reader builds it from what it read.
func NewState(cfg config.Config, readAt time.Time, inputs []MemberInput) *State {
	clusters := make([]*clusterv1alpha1.Cluster, len(inputs))
	members := make([]*memberState, len(inputs))
	views := make([]Cluster, len(inputs))
	for i, in := range inputs {
		clusters[i] = in.Cluster
		if in.Err != nil {
			views[i] = Cluster{Name: in.Cluster.Name, Error: in.Err.Error(), Models: []ModelSummary{}, Nodes: []Node{}, Pods: []Pod{}}
		} else {
			members[i] = buildMember(in.Cluster.Name, memberObjects{nodes: in.Nodes, pods: in.Pods}, cfg)
			views[i] = members[i].view
			views[i].Reachable, views[i].ReadAt = true, readAt
		}
		withKarmadaStatus(&views[i], in.Cluster)
	}
	return assemble(cfg, readAt, clusters, members, views)
}

// assemble puts the members' views and states together, sorted by cluster
// name, with the fleet's totals over the reachable members.
func assemble(cfg config.Config, readAt time.Time, clusters []*clusterv1alpha1.Cluster, members []*memberState, views []Cluster) *State {
	st := &State{
		Fleet:    Fleet{ReadAt: readAt, Clusters: views},
		members:  map[string]*memberState{},
		clusters: map[string]*clusterv1alpha1.Cluster{},
		cfg:      cfg,
	}
	var all []ModelSummary
	for i, c := range clusters {
		st.clusters[c.Name] = c
		if members[i] != nil {
			st.members[c.Name] = members[i]
		}
		if views[i].Reachable {
			all = append(all, views[i].Models...)
		}
	}
	slices.SortFunc(st.Fleet.Clusters, func(a, b Cluster) int { return cmp.Compare(a.Name, b.Name) })
	st.Fleet.Totals = gpustate.MergeModels(all)
	if st.Fleet.Totals == nil {
		st.Fleet.Totals = []ModelSummary{}
	}
	return st
}
