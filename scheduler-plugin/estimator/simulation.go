package estimator

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/karmada-io/karmada/pkg/estimator/pb"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// simulation places replicas on a copy of the cluster, the way the member
// cluster would place them one by one: ordinary resources by subtraction,
// GPUs with vgpu.Place and vgpu.Apply (the extender's own choice of GPUs).
// Nodes it has not touched are read straight from the view.
type simulation struct {
	view    *clusterView
	taken   []*taken
	devices [][]vgpu.DeviceState
	touched []bool
}

// newSimulation starts a simulation of the view's nodes. Its per-node
// arrays are made on its first placement: most simulations place nothing.
func newSimulation(view *clusterView) *simulation {
	return &simulation{view: view}
}

// ensure makes the per-node arrays before a placement.
func (s *simulation) ensure() {
	if s.taken == nil {
		n := len(s.view.nodes)
		s.taken, s.devices, s.touched = make([]*taken, n), make([][]vgpu.DeviceState, n), make([]bool, n)
	}
}

// takenAt is what the simulation placed on node i; nil for nothing.
func (s *simulation) takenAt(i int) *taken {
	if s.taken == nil {
		return nil
	}
	return s.taken[i]
}

// clone is an independent copy of the simulation: placing on it leaves s
// as it was.
func (s *simulation) clone() *simulation {
	if s.taken == nil {
		return &simulation{view: s.view}
	}
	c := &simulation{view: s.view, taken: make([]*taken, len(s.taken)), devices: slices.Clone(s.devices), touched: slices.Clone(s.touched)}
	for i, t := range s.taken {
		if t != nil {
			copied := *t
			copied.scalars = maps.Clone(t.scalars)
			c.taken[i] = &copied
		}
	}
	return c
}

func (s *simulation) devicesOf(i int) []vgpu.DeviceState {
	if s.touched != nil && s.touched[i] {
		return s.devices[i]
	}
	return s.view.devices(i)
}

// copiesOn is Requirement.copiesOn on the simulated state of node i.
func (s *simulation) copiesOn(i int, req *Requirement) int64 {
	return req.copiesOn(s.view.nodes[i], s.devicesOf(i), s.takenAt(i))
}

// place puts up to k replicas on node i and returns how many it placed.
// GPU replicas are placed one at a time with the extender's algorithm, which
// may stop short of the exact maximum on a fragmented node; the shortfall
// makes the simulation conservative, never optimistic.
func (s *simulation) place(i int, req *Requirement, k int64) int64 {
	s.ensure()
	placed := k
	if req.AsksForGPUs {
		devices := s.devicesOf(i)
		placed = 0
		for placed < k {
			p, err := vgpu.Place(devices, req.GPU)
			if err != nil {
				break
			}
			next, err := vgpu.Apply(devices, p)
			if err != nil {
				break
			}
			devices = next
			placed++
		}
		s.devices[i], s.touched[i] = devices, true
	}
	if s.taken[i] == nil {
		s.taken[i] = &taken{}
	}
	s.taken[i].add(&req.Resources, placed)
	return placed
}

// component is one part of a multi-component set.
type component struct {
	name     string
	replicas int64
	req      Requirement
	// cursor is the first node that may still take a replica: capacity only
	// shrinks as the simulation places replicas, so nodes before it never
	// come back.
	cursor int
}

// placeComponent places all replicas of one component first-fit over the
// nodes, as Karmada's SchedulingSimulator does, and reports whether all of
// them found room. Replicas placed before a failure stay placed.
func (s *simulation) placeComponent(c *component) bool {
	remaining := c.replicas
	for i := c.cursor; i < len(s.view.nodes) && remaining > 0; i++ {
		exhausted := true
		if c.req.matches(s.view.nodes[i]) {
			if k := min(remaining, s.copiesOn(i, &c.req)); k > 0 {
				placed := s.place(i, &c.req, k)
				remaining -= placed
				exhausted = placed < k
			}
		}
		if exhausted && i == c.cursor {
			c.cursor++
		}
	}
	return remaining == 0
}

// placeSets places complete sets until one does not fit or limit sets are
// placed, and returns how many it placed.
func (s *simulation) placeSets(ctx context.Context, components []*component, limit int64) (int64, error) {
	var sets int64
	for sets < limit {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("simulate component sets: %w", err)
		}
		for _, c := range components {
			if !s.placeComponent(c) {
				return sets, nil
			}
		}
		sets++
	}
	return sets, nil
}

// parseComponents parses the components of a set, leaving out nil and
// zero-replica ones (they need nothing).
func parseComponents(in []*pb.Component, cfg config.Config) ([]*component, error) {
	out := make([]*component, 0, len(in))
	for _, c := range in {
		if c == nil {
			continue
		}
		if c.GetReplicas() < 0 {
			return nil, fmt.Errorf("component %q has %d replicas", c.GetName(), c.GetReplicas())
		}
		if c.GetReplicas() == 0 {
			continue
		}
		req, err := ParseComponentRequirements(c.GetReplicaRequirements(), cfg)
		if err != nil {
			return nil, fmt.Errorf("component %q: %w", c.GetName(), err)
		}
		out = append(out, &component{name: c.GetName(), replicas: int64(c.GetReplicas()), req: req})
	}
	return out, nil
}
