package env

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// ExactEstimate is how many replicas asking for request fit in the member
// now, computed from its Nodes and pods as listed, without the estimator's
// caches, snapshots or memo: the sum over schedulable untainted nodes of
// the per-node minimum of the GPU fit (vgpu.MaxReplicas over the node's
// GPUs less every live pod assigned there, bound or not) and of each
// ordinary resource the replica asks for (allocatable less the requests
// of the node's live bound pods, and the pod count). It is what the
// member's estimator must answer once its view has caught up.
func (m *Member) ExactEstimate(ctx context.Context, request corev1.ResourceList) (int32, error) {
	s, err := m.listState(ctx)
	if err != nil {
		return 0, err
	}
	return m.exact(s, request)
}

func (m *Member) exact(s memberState, request corev1.ResourceList) (int32, error) {
	cfg := m.env.cfg
	req, asks, err := gpustate.RequestFromResources(request, cfg)
	if err != nil {
		return 0, err
	}
	total := int64(0)
	for i := range s.nodes {
		node := &s.nodes[i]
		if node.Spec.Unschedulable || len(node.Spec.Taints) > 0 {
			continue
		}
		fit := int64(1 << 31)
		if asks {
			devices, _, err := gpustate.NodeDevicesWithPodErrors(node, s.pods, cfg.Keys())
			if err != nil {
				return 0, fmt.Errorf("exact estimate for %s: %w", m.name, err)
			}
			fit = int64(vgpu.MaxReplicas(devices, req))
		}
		used, pods := corev1.ResourceList{}, int64(0)
		for _, pod := range s.pods {
			if pod.Spec.NodeName != node.Name || gpustate.IsTerminal(pod) {
				continue
			}
			pods++
			for _, c := range pod.Spec.Containers {
				for name, q := range c.Resources.Requests {
					sum := used[name]
					sum.Add(q)
					used[name] = sum
				}
			}
		}
		podRoom := node.Status.Allocatable.Pods().Value() - pods
		fit = min(fit, max(podRoom, 0))
		for name, q := range request {
			if q.IsZero() {
				continue
			}
			free := node.Status.Allocatable[name]
			free.Sub(used[name])
			fit = min(fit, max(quotient(free, q), 0))
		}
		total += fit
	}
	return int32(min(total, 1<<31-1)), nil
}

// quotient is how many times q fits in free, in milli-units so that cpu
// requests divide as the scheduler divides them.
func quotient(free, q resource.Quantity) int64 {
	return free.MilliValue() / q.MilliValue()
}

// checkEstimates: each member's Tessera estimator answers each workload's
// shape exactly as computed from s.
func (m *Member) checkEstimates(ctx context.Context, f *Findings, s memberState, workloads []Workload) error {
	addr := m.EstimatorAddress()
	if addr == "" {
		f.unsettled("%s: no estimator is serving", m.name)
		return nil
	}
	creds, err := m.env.estimatorCredentials() // mutual TLS when the environment serves it
	if err != nil {
		return err
	}
	for _, w := range workloads {
		request := w.Request.Resources(m.env.cfg.Resources)
		want, err := m.exact(s, request)
		if err != nil {
			return err
		}
		got, err := TesseraEstimateWith(ctx, addr, m.name, request, creds)
		f.Summary = append(f.Summary, fmt.Sprintf("%s: estimator %d replicas of %s, exact %d", m.name, got, w.Name, want))
		switch {
		case err != nil:
			f.unsettled("%s: estimator: %v", m.name, err)
		case got != want:
			f.unsettled("%s: the estimator answers %d replicas of %s, exactly %d fit", m.name, got, w.Name, want)
		}
	}
	return nil
}
