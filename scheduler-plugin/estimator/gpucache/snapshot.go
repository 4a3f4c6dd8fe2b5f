// Package gpucache keeps every node's GPU state (its inventory minus what
// assigned pods use) up to date from informer events, so that the estimator
// parses annotations once per change instead of once per request, and so
// that it keeps answering from the last known state when the member
// cluster's API server is unreachable.
package gpucache

import (
	"sync"
	"time"

	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// NodeGPUs is one node's GPU state. It is immutable once published.
type NodeGPUs struct {
	Name string
	// Devices are the node's GPUs with their usage; empty when the node has
	// no inventory or an undecodable one.
	Devices []vgpu.DeviceState
	// InventoryErr is set when the inventory annotation does not decode: the
	// node then counts as having no GPUs.
	InventoryErr error
	// BadPods counts pods on the node whose assignment could not be counted.
	BadPods int
}

// Snapshot is a consistent, immutable view of every known node's GPUs.
type Snapshot struct {
	version uint64
	// slots and states are the cache's slot numbering and the state by slot
	// (nil: no node, or no state); count is the non-nil states.
	slots  *slotNames
	states []*NodeGPUs
	count  int
	// summary is computed on first use: estimates never need it.
	summaryOnce sync.Once
	summary     Summary
	// models is computed on first use, like summary: every scrape between
	// two changes of the cluster reads the same one.
	modelsOnce sync.Once
	models     []gpustate.ModelSummary
	// TakenAt is when the snapshot was assembled.
	TakenAt time.Time
}

// Summary aggregates a snapshot for metrics.
type Summary struct {
	Nodes int
	// NodesWithBadInventory counts nodes whose inventory does not decode.
	NodesWithBadInventory int
	// PodsWithBadAssignment counts pods whose assignment could not be counted.
	PodsWithBadAssignment int
	// Free capacity over healthy GPUs.
	FreeSlots     int64
	FreeMemoryMiB int64
	FreeCores     int64
	// LargestPlaceableMiB is, per GPU model, the largest memory share that one
	// more vGPU could get on a single healthy GPU with a free slot.
	LargestPlaceableMiB map[string]int64
}

// Node returns the named node's GPU state.
func (s *Snapshot) Node(name string) (*NodeGPUs, bool) {
	if s == nil {
		return nil, false
	}
	slot, ok := s.slots.slotOf[name]
	if !ok {
		return nil, false
	}
	n := s.states[slot]
	return n, n != nil
}

// Slot is the name's slot in this snapshot's lineage; the node may have no
// state at it (deleted, or not seen yet).
func (s *Snapshot) Slot(name string) (int32, bool) {
	if s == nil {
		return 0, false
	}
	slot, ok := s.slots.slotOf[name]
	return slot, ok
}

// AtSlot is the state at a slot of this snapshot's lineage; nil when none.
func (s *Snapshot) AtSlot(slot int32) *NodeGPUs {
	if s == nil || slot < 0 || int(slot) >= len(s.states) {
		return nil
	}
	return s.states[slot]
}

// Lineage identifies the snapshot's slot numbering: a slot names the same
// node in every snapshot of one lineage. SlotNames orders the lineage's
// name sets (the second value): where both are equal, Slot answers the
// same for every name.
func (s *Snapshot) Lineage() (*Lineage, uint64) {
	if s == nil {
		return nil, 0
	}
	return s.slots.lineage, s.slots.version
}

// Len is the number of nodes in the snapshot.
func (s *Snapshot) Len() int {
	if s == nil {
		return 0
	}
	return s.count
}

// Summary returns the aggregates of the snapshot.
func (s *Snapshot) Summary() Summary {
	if s == nil {
		return Summary{}
	}
	s.summaryOnce.Do(func() { s.summary = summarize(s.states) })
	return s.summary
}

// Models summarises the snapshot's GPUs per model with gpustate's one
// summary (the fleet view's too), without a cluster name. Nodes whose
// inventory does not decode have no devices and count for nothing. Callers
// must not modify the result.
func (s *Snapshot) Models() []gpustate.ModelSummary {
	if s == nil {
		return nil
	}
	s.modelsOnce.Do(func() {
		nodes := make([][]vgpu.DeviceState, 0, s.count)
		for _, n := range s.states {
			if n != nil {
				nodes = append(nodes, n.Devices)
			}
		}
		s.models = gpustate.SummarizeModels("", nodes)
	})
	return s.models
}

// NewSnapshot builds a snapshot from node states directly, for callers that
// do not run informers (tests, benchmarks, one-shot tools).
func NewSnapshot(nodes []*NodeGPUs, takenAt time.Time) *Snapshot {
	slots := &slotNames{lineage: &Lineage{}, slotOf: make(map[string]int32, len(nodes))}
	states := make([]*NodeGPUs, 0, len(nodes))
	for _, n := range nodes {
		if slot, ok := slots.slotOf[n.Name]; ok { // the last one wins, as a map would have it
			states[slot] = n
			continue
		}
		slots.slotOf[n.Name] = int32(len(states))
		states = append(states, n)
	}
	return &Snapshot{slots: slots, states: states, count: len(states), TakenAt: takenAt}
}

func summarize(states []*NodeGPUs) Summary {
	s := Summary{LargestPlaceableMiB: map[string]int64{}}
	for _, n := range states {
		if n == nil {
			continue
		}
		s.Nodes++
		if n.InventoryErr != nil {
			s.NodesWithBadInventory++
		}
		s.PodsWithBadAssignment += n.BadPods
		for i := range n.Devices {
			d := &n.Devices[i]
			if !d.Healthy {
				continue
			}
			free := d.Free()
			s.FreeSlots += int64(free.Slots)
			s.FreeMemoryMiB = saturatingAdd(s.FreeMemoryMiB, free.MemoryMiB)
			s.FreeCores += int64(free.Cores)
			if free.Slots > 0 && free.MemoryMiB > s.LargestPlaceableMiB[d.Model] {
				s.LargestPlaceableMiB[d.Model] = free.MemoryMiB
			} else if _, seen := s.LargestPlaceableMiB[d.Model]; !seen {
				s.LargestPlaceableMiB[d.Model] = 0 // the model exists but is full
			}
		}
	}
	return s
}

func saturatingAdd(a, b int64) int64 {
	if s := a + b; s >= a {
		return s
	}
	return 1<<63 - 1
}
