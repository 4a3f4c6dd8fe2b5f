package estimator

import (
	"context"
	"fmt"

	"github.com/karmada-io/karmada/pkg/estimator/pb"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// deductAssumed places one set of every in-flight workload on the
// simulation, so that what the Karmada scheduler has already sent to this
// cluster but the cluster has not yet bound is not offered twice. A set is
// placed where the component-set search finds room for all of it (the same
// search as the answer, so an in-flight set that fits is deducted whole
// even where first-fit would not find room); a set that fits nowhere as a
// whole is placed first-fit as far as it goes, as Karmada's own simulator
// does, since the cluster will still try to run what it can of it.
func (p *Plugin) deductAssumed(ctx context.Context, sim *simulation, assumed []*pb.AssumedWorkload) error {
	for _, w := range assumed {
		components, err := parseComponents(w.GetComponents(), p.cfg)
		if err != nil {
			return fmt.Errorf("assumed workload in namespace %q: %w", w.GetNamespace(), err)
		}
		if len(components) == 0 || p.placeOneSet(ctx, sim, components) {
			continue
		}
		if _, err := sim.placeSets(ctx, components, 1); err != nil {
			return fmt.Errorf("assumed workload in namespace %q: %w", w.GetNamespace(), err)
		}
	}
	return nil
}

// placeOneSet finds room for one whole set and places it on the
// simulation; it changes nothing and reports false when it finds none.
func (p *Plugin) placeOneSet(ctx context.Context, sim *simulation, components []*component) bool {
	dims := newSetDims(components)
	nodes, capacity := setNodes(sim, components, p.setRowsFor(ctx, sim, components, dims, nil))
	for c, comp := range components {
		if capacity[c] < comp.replicas {
			return false
		}
	}
	s := newSetSearch(ctx, components, dims, nodes, capacity, setSearchBudget)
	if ok, _ := s.greedy(1); !ok {
		if fits, _ := s.feasible(1); !fits {
			return false
		}
	}
	// Choose every node's GPUs before changing anything, so that a
	// placement that cannot be realised leaves the simulation as it was.
	nC := len(components)
	placed := make([][]vgpu.DeviceState, len(nodes))
	for pos, n := range nodes {
		v := s.choice[pos*nC : (pos+1)*nC]
		req := combinedRequest(components, v)
		if len(req.Containers) == 0 {
			continue
		}
		pl, err := vgpu.Place(n.devices, req)
		if err != nil {
			return false
		}
		if placed[pos], err = vgpu.Apply(n.devices, pl); err != nil {
			return false
		}
	}
	sim.ensure()
	for pos, n := range nodes {
		v := s.choice[pos*nC : (pos+1)*nC]
		if placed[pos] != nil {
			sim.devices[n.pos], sim.touched[n.pos] = placed[pos], true
		}
		for c, x := range v {
			if x > 0 {
				if sim.taken[n.pos] == nil {
					sim.taken[n.pos] = &taken{}
				}
				sim.taken[n.pos].add(&components[c].req.Resources, x)
			}
		}
	}
	return true
}

// combinedRequest is one pod holding the GPU containers of v[c] replicas
// of every component c, named apart, so that vgpu.Place chooses GPUs for
// all replicas on a node at once.
func combinedRequest(components []*component, v []int64) vgpu.PodRequest {
	req := vgpu.PodRequest{GPUPolicy: vgpu.Binpack}
	for c, x := range v {
		if !components[c].req.AsksForGPUs {
			continue
		}
		for k := range x {
			for _, ct := range components[c].req.GPU.Containers {
				if ct.GPUs > 0 {
					ct.Name = fmt.Sprintf("c%d-r%d-%s", c, k, ct.Name)
					req.Containers = append(req.Containers, ct)
				}
			}
		}
	}
	return req
}
