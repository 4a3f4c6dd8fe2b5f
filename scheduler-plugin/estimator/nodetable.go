package estimator

import (
	"sync/atomic"

	schedulerframework "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework"

	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

// Limits of a table's change history: a memo older than what the history
// holds is recomputed in full, which is never wrong, only slower.
const (
	historyEpochs    = 256
	historyPositions = 4096
)

// nodeTable records, for each position of Karmada's node list, what the
// node there was when it was last looked at: its NodeInfo generation and
// its GPU state. Karmada bumps a NodeInfo's Generation from one process-wide
// counter on every change of the node object or its pods, and a snapshot's
// clone keeps it, so an equal non-zero generation is the same node with the
// same labels, taints, allocatable, requests and pod count; the GPU cache
// publishes a new *NodeGPUs for every change of a node's GPUs. Together they
// are everything a per-node answer depends on besides the request, so an
// answer memoised under a table's epoch is exact for any node list that
// checks equal to the table.
//
// A table is immutable once built. epoch names its content: a table that
// differs in any position gets a new epoch, with the changed positions in
// its history so that memoised answers can be brought up to date node by
// node.
type nodeTable struct {
	epoch uint64
	// gpus is the GPU snapshot the states were last checked against; when
	// the next request reads the same one, only generations are compared.
	gpus    *gpucache.Snapshot
	lineage *gpucache.Lineage
	// version is the snapshot content the table was last checked against
	// (zero: none known); the same version and GPU snapshot need no check.
	version SnapshotVersion
	// names is the slot-name version at which positions without a slot were
	// looked up; missing counts those positions.
	names   uint64
	missing int
	gens    []int64
	slots   []int32 // -1: the GPU cache has no slot for the node's name
	states  []*gpucache.NodeGPUs
	history []tableChange
}

// tableChange is the positions that differ between the tables of two
// consecutive epochs.
type tableChange struct {
	from, to  uint64
	positions []int32
}

// devices is the GPUs at position i; nil for none.
func (t *nodeTable) devices(i int) *gpucache.NodeGPUs { return t.states[i] }

// changesSince lists the positions changed after epoch from, or false when
// the history does not reach back that far. The list may repeat positions.
func (t *nodeTable) changesSince(from uint64) ([]int32, bool) {
	for k, c := range t.history {
		if c.from != from {
			continue
		}
		var positions []int32
		for _, c := range t.history[k:] {
			positions = append(positions, c.positions...)
		}
		return positions, true
	}
	return nil, false
}

// tables hands out the node table for a request's node list and GPU
// snapshot, reusing the last one where nothing changed.
type tables struct {
	last   atomic.Pointer[nodeTable]
	epochs atomic.Uint64
}

// forList returns a table that checks equal to nodes and gpus. The common
// case reads one generation per node and allocates nothing; a change costs
// copies of the table's arrays, shared by the concurrent requests that see
// the same change once one of them has published it.
//
// version names the content of the snapshot nodes come from, when known:
// the table last checked against the same version and GPU snapshot is
// returned without reading the nodes.
func (ts *tables) forList(nodes []*schedulerframework.NodeInfo, gpus *gpucache.Snapshot, version SnapshotVersion) *nodeTable {
	lineage, names := gpus.Lineage()
	for range 2 {
		t := ts.last.Load()
		if t != nil && version.Snapshot != nil && t.version == version && t.gpus == gpus && t.names == names {
			return t
		}
		if t == nil || len(t.gens) != len(nodes) || t.lineage != lineage {
			nt := ts.build(nodes, gpus)
			nt.version = version
			ts.last.CompareAndSwap(t, nt)
			return nt
		}
		changed := t.diff(nodes, gpus, names)
		if len(changed) == 0 {
			if t.gpus == gpus && t.names == names && t.version == version {
				return t
			}
			// Same content read through a newer GPU snapshot or another
			// snapshot: keep the epoch, so that memoised answers stay valid.
			nt := *t
			nt.gpus, nt.names, nt.version = gpus, names, version
			ts.last.CompareAndSwap(t, &nt)
			return &nt
		}
		nt := ts.derive(t, nodes, gpus, names, changed)
		nt.version = version
		if ts.last.CompareAndSwap(t, nt) {
			return nt
		}
		// Another request published first, most likely for the same change:
		// check against its table, so that both share one epoch.
	}
	nt := ts.build(nodes, gpus)
	nt.version = version
	return nt
}

// diff lists the positions whose node differs from the table's.
func (t *nodeTable) diff(nodes []*schedulerframework.NodeInfo, gpus *gpucache.Snapshot, names uint64) []int32 {
	checkStates := t.gpus != gpus
	lookUpMissing := t.missing > 0 && t.names != names
	var changed []int32
	for i, ni := range nodes {
		g := ni.Generation
		switch {
		case g == 0 || g != t.gens[i]:
			// Generation 0 is a NodeInfo built without Karmada's
			// constructors: nothing identifies its content.
			changed = append(changed, int32(i))
		case t.slots[i] >= 0:
			if checkStates && gpus.AtSlot(t.slots[i]) != t.states[i] {
				changed = append(changed, int32(i))
			}
		case lookUpMissing:
			if node := ni.Node(); node != nil {
				if _, ok := gpus.Slot(node.Name); ok {
					changed = append(changed, int32(i))
				}
			}
		}
	}
	return changed
}

// build makes a table from scratch, with a new epoch and no history.
func (ts *tables) build(nodes []*schedulerframework.NodeInfo, gpus *gpucache.Snapshot) *nodeTable {
	lineage, names := gpus.Lineage()
	t := &nodeTable{
		epoch: ts.epochs.Add(1), gpus: gpus, lineage: lineage, names: names,
		gens: make([]int64, len(nodes)), slots: make([]int32, len(nodes)), states: make([]*gpucache.NodeGPUs, len(nodes)),
	}
	for i, ni := range nodes {
		t.set(i, ni, gpus)
	}
	return t
}

// derive is t with the changed positions read again, under a new epoch.
func (ts *tables) derive(t *nodeTable, nodes []*schedulerframework.NodeInfo, gpus *gpucache.Snapshot, names uint64, changed []int32) *nodeTable {
	nt := &nodeTable{
		epoch: ts.epochs.Add(1), gpus: gpus, lineage: t.lineage, names: names, missing: t.missing,
		gens: append([]int64(nil), t.gens...), slots: append([]int32(nil), t.slots...),
		states: append([]*gpucache.NodeGPUs(nil), t.states...),
	}
	for _, i := range changed {
		if nt.slots[i] < 0 {
			nt.missing--
		}
		nt.set(int(i), nodes[i], gpus)
	}
	// Keep the newest history that fits both limits.
	start, positions := len(t.history), len(changed)
	for start > 0 && len(t.history)-start+1 < historyEpochs {
		p := len(t.history[start-1].positions)
		if positions+p > historyPositions {
			break
		}
		positions += p
		start--
	}
	nt.history = make([]tableChange, 0, len(t.history)-start+1)
	nt.history = append(nt.history, t.history[start:]...)
	nt.history = append(nt.history, tableChange{from: t.epoch, to: nt.epoch, positions: changed})
	return nt
}

// set reads position i; the caller counts missing for positions it
// replaces.
func (t *nodeTable) set(i int, ni *schedulerframework.NodeInfo, gpus *gpucache.Snapshot) {
	t.gens[i] = ni.Generation
	t.slots[i], t.states[i] = -1, nil
	node := ni.Node()
	if node == nil {
		t.missing++
		return
	}
	slot, ok := gpus.Slot(node.Name)
	if !ok {
		t.missing++
		return
	}
	t.slots[i], t.states[i] = slot, gpus.AtSlot(slot)
}
