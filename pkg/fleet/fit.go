package fleet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	estimatorclient "github.com/karmada-io/karmada/pkg/estimator/client"
	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/util/helper"
	corev1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/server"
)

// FitRequest is a workload to place: one replica's pod template and how
// many replicas are wanted (0: only count).
type FitRequest struct {
	Template corev1.PodTemplateSpec
	Replicas int32
}

// FitResult is, per member, how many replicas of the request fit.
type FitResult struct {
	// Replica is what one replica asks for, as Karmada sends it to
	// estimators (the sum over the pod's containers).
	Replica  corev1.ResourceList `json:"replica"`
	Replicas int32               `json:"replicas,omitempty"`
	Clusters []FitAnswer         `json:"clusters"`
	// Tessera and Karmada are the sums over reachable members.
	Tessera int64 `json:"tessera"`
	Karmada int64 `json:"karmada"`
}

// FitAnswer is one member's answer.
type FitAnswer struct {
	Cluster   string `json:"cluster"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Tessera is the exact count: what the member's Tessera estimator
	// answers for the nodes and pods read (fragmentation-aware).
	Tessera int32 `json:"tessera"`
	// Karmada is what Karmada's general estimator computes from the
	// Cluster's resource summary (node totals, blind to fragmentation).
	Karmada int32 `json:"karmada"`
	// Scheduler is what karmada-scheduler goes by with Tessera's
	// estimator: the smaller of the two.
	Scheduler int32 `json:"scheduler"`
	// First is where the first replica would go, when one fits.
	First *FirstPlacement `json:"first,omitempty"`
}

// FirstPlacement is the node and GPUs the extender's policy would pick
// for one replica now.
type FirstPlacement struct {
	Node       string            `json:"node"`
	Containers []PlacedContainer `json:"containers"`
}

// PlacedContainer is one container's GPUs in a placement.
type PlacedContainer struct {
	Name string      `json:"name"`
	GPUs []PlacedGPU `json:"gpus"`
}

// PlacedGPU is one GPU and the share of it a container would get.
type PlacedGPU struct {
	UUID      string `json:"uuid"`
	Index     int    `json:"index"`
	Model     string `json:"model"`
	MemoryMiB int64  `json:"memoryMiB"`
	Cores     int    `json:"cores"`
}

// Fit answers, for every member of the state, how many replicas of the
// request fit: Tessera's exact count, computed by the estimator's own
// framework and plugin (server.Static) over the member's nodes and pods,
// beside Karmada's general estimate from the Cluster object. An
// unreachable member without data answers nothing, with its reason.
func (s *State) Fit(ctx context.Context, req FitRequest) (*FitResult, error) {
	rr := helper.GenerateReplicaRequirements(&req.Template)
	pbReq, err := toPBRequest(rr)
	if err != nil {
		return nil, fmt.Errorf("encode the replica's requirements: %w", err)
	}
	pod := &corev1.Pod{ObjectMeta: req.Template.ObjectMeta, Spec: req.Template.Spec}
	podReq, err := gpustate.PodRequest(pod, s.cfg)
	if err != nil {
		return nil, err
	}
	opts, err := annotations.DecodePodOptions(s.cfg.Keys(), req.Template.Annotations)
	if err != nil {
		return nil, fmt.Errorf("read the template's placement options: %w", err)
	}
	res := &FitResult{Replicas: req.Replicas, Clusters: make([]FitAnswer, 0, len(s.Fleet.Clusters))}
	if rr != nil {
		res.Replica = rr.ResourceRequest
	}
	for _, view := range s.Fleet.Clusters {
		a := FitAnswer{Cluster: view.Name, Reachable: view.Reachable, Error: view.Error}
		if c := s.clusters[view.Name]; c != nil {
			a.Karmada = KarmadaGeneralEstimate(ctx, c, rr)
		}
		m := s.members[view.Name]
		if m == nil {
			res.Clusters = append(res.Clusters, a)
			continue
		}
		if a.Tessera, err = m.maxReplicas(ctx, s, pbReq); err != nil {
			return nil, fmt.Errorf("estimate replicas for member %s: %w", view.Name, err)
		}
		a.Scheduler = min(a.Tessera, a.Karmada)
		if len(podReq.Containers) > 0 && a.Tessera > 0 {
			a.First = m.firstPlacement(pod, podReq, opts.NodePolicy)
		}
		if view.Reachable {
			res.Tessera += int64(a.Tessera)
			res.Karmada += int64(a.Karmada)
		}
		res.Clusters = append(res.Clusters, a)
	}
	return res, nil
}

// maxReplicas asks the member's static estimator, built on first use.
func (m *memberState) maxReplicas(ctx context.Context, s *State, req *pb.MaxAvailableReplicasRequest) (int32, error) {
	est, err := m.static(s)
	if err != nil {
		return 0, err
	}
	return est.MaxAvailableReplicas(ctx, req)
}

func (m *memberState) static(s *State) (*server.Static, error) {
	m.estimatorOnce.Do(func() {
		nodes := make([]*gpucache.NodeGPUs, 0, len(m.objects.nodes))
		for _, node := range m.objects.nodes {
			nodes = append(nodes, &gpucache.NodeGPUs{Name: node.Name, Devices: m.devices[node.Name], InventoryErr: m.badInventory[node.Name]})
		}
		gpus := gpucache.NewSnapshot(nodes, m.view.ReadAt)
		m.estimator, m.estimatorErr = server.NewStatic(s.cfg, m.objects.nodes, m.objects.pods, gpus)
	})
	return m.estimator, m.estimatorErr
}

// staticEstimator is built once per member state, on the first Fit.
type staticEstimator struct {
	estimatorOnce sync.Once
	estimator     *server.Static
	estimatorErr  error
}

// firstPlacement is what the extender would do with one replica now: the
// best-scoring node the pod may use (node affinity, taints, schedulable)
// and the GPUs vgpu.Place picks there. It does not weigh cpu or memory.
func (m *memberState) firstPlacement(pod *corev1.Pod, req vgpu.PodRequest, policy vgpu.Policy) *FirstPlacement {
	affinity := nodeaffinity.GetRequiredNodeAffinity(pod)
	best, bestScore := "", 0
	nodes := slices.Clone(m.objects.nodes)
	slices.SortFunc(nodes, func(a, b *corev1.Node) int { return cmp.Compare(a.Name, b.Name) })
	for _, node := range nodes {
		if node.Spec.Unschedulable {
			continue
		}
		if ok, _ := affinity.Match(node); !ok {
			continue
		}
		if _, untolerated := corev1helpers.FindMatchingUntoleratedTaint(klog.Background(), node.Spec.Taints, pod.Spec.Tolerations,
			func(t *corev1.Taint) bool {
				return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
			}, false); untolerated {
			continue
		}
		if score := vgpu.NodeScore(m.devices[node.Name], req, policy); score > bestScore {
			best, bestScore = node.Name, score
		}
	}
	if best == "" {
		return nil
	}
	devices := m.devices[best]
	p, err := vgpu.Place(devices, req)
	if err != nil {
		return nil
	}
	byUUID := map[string]vgpu.DeviceState{}
	for _, d := range devices {
		byUUID[d.UUID] = d
	}
	out := &FirstPlacement{Node: best}
	for _, c := range p.Containers {
		pc := PlacedContainer{Name: c.Name}
		for _, g := range c.Devices {
			d := byUUID[g.UUID]
			pc.GPUs = append(pc.GPUs, PlacedGPU{UUID: g.UUID, Index: d.Index, Model: d.Model, MemoryMiB: g.MemoryMiB, Cores: g.Cores})
		}
		out.Containers = append(out.Containers, pc)
	}
	return out
}

// KarmadaGeneralEstimate is Karmada's general estimator on the Cluster
// object, exactly as karmada-scheduler computes it.
func KarmadaGeneralEstimate(ctx context.Context, c *clusterv1alpha1.Cluster, rr *workv1alpha2.ReplicaRequirements) int32 {
	targets, err := estimatorclient.NewGeneralEstimator().MaxAvailableReplicas(ctx, estimatorclient.ReplicaEstimationRequest{
		Clusters:            []*clusterv1alpha1.Cluster{c},
		ReplicaRequirements: rr,
	})
	if err != nil || len(targets) != 1 {
		return 0 // the general estimator does not fail; this guards the index
	}
	return targets[0].Replicas
}
