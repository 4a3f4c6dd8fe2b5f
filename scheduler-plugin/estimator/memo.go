package estimator

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/karmada-io/karmada/pkg/estimator/pb"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// maxMemoShapes bounds how many request shapes keep memoised answers, per
// kind (replicas, component sets): a replica shape holds 4 bytes per node.
// When full, an arbitrary shape is dropped; it is recomputed when asked again.
const maxMemoShapes = 64

// incrementalShare is the largest share of the nodes that is recomputed one
// by one; beyond it one full parallel pass is cheaper than the copy and the
// scattered reads.
const incrementalShare = 8

// memo keeps answers by request shape under the node table's epoch they
// were computed at (nodetable.go). A shape is the request's deterministic
// protobuf encoding, so two requests share an answer only if every field
// that could change it is equal; quantities spelled differently ("1" and
// "1000m") merely miss.
type memo struct {
	mu       sync.Mutex
	replicas map[string]*replicaAnswer
	sets     map[string]*setsAnswer
	// flights are the component-set answers being computed, one per shape:
	// concurrent requests for the same shape and epoch wait for it instead
	// of each computing the same answer.
	flights map[string]*setsFlight
	// noGPU holds shapes that ask for no Tessera resource, which the plugin
	// leaves to Karmada's own (most of a mixed fleet's workloads).
	noGPU map[string]struct{}
	// keys recycles the buffers shape keys are encoded into, so that the
	// question path allocates only where it stores a new shape.
	keys sync.Pool
}

// replicaAnswer is one shape's per-position answers at epoch. Immutable.
type replicaAnswer struct {
	epoch uint64
	nodes int
	// copies are Tessera's per-position answers (each clamped to MaxInt32,
	// as the sum clamps them) and total their sum; nil for a shape without
	// Tessera resources.
	copies []int32
	total  int64
	// stock are Karmada's noderesource per-position answers, converted to
	// int32 as it converts them, and stockTotal their sum, wrapping as its
	// int32 sum wraps; nil unless the plugin answers for it.
	stock      []int32
	stockTotal int32
}

// setsAnswer is one component-set shape's answer at epoch. Immutable. The
// next epoch's answer starts from its rows and checkpoints: the rows of the
// changed nodes are read again, and the greedy pass and the first-fit
// simulation resume before the first of them; the search, where it runs,
// reads the whole cluster.
type setsAnswer struct {
	epoch uint64
	// sets is Tessera's answer, exact unless the search ran out of budget;
	// gpus tells whether the shape asks for Tessera resources at all.
	sets        int64
	exact, gpus bool
	// firstFit is Karmada's noderesource answer when the plugin answers for
	// it (firstfit.go).
	firstFit int32
	// rows are the per-node rows both answers were read from (setrows.go),
	// for the next epoch's answer to start from.
	rows *setRows
	// greedy are the checkpoints of the greedy pass (setgreedy.go), for
	// the next epoch's pass to resume from; nil where it did not run.
	greedy *greedyMarks
	// firstFitMarks are the first-fit simulation's checkpoints
	// (firstfit.go), likewise.
	firstFitMarks *firstFitMarks
}

func newMemo() *memo {
	return &memo{replicas: map[string]*replicaAnswer{}, sets: map[string]*setsAnswer{}, noGPU: map[string]struct{}{}, flights: map[string]*setsFlight{}}
}

func (m *memo) keyBuffer() *[]byte {
	if b, ok := m.keys.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 512)
	return &b
}

func (m *memo) replica(key []byte) *replicaAnswer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.replicas[string(key)]
}

func (m *memo) storeReplica(key []byte, a *replicaAnswer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	storeNewest(m.replicas, key, a, a.epoch, func(old *replicaAnswer) uint64 { return old.epoch })
}

// storeNewest stores a (of epoch) under key unless a newer answer is there
// already; a new key in a full map (maxMemoShapes) takes an arbitrary old
// one's place. The caller holds the memo's lock.
func storeNewest[A any](answers map[string]A, key []byte, a A, epoch uint64, epochOf func(A) uint64) {
	old, ok := answers[string(key)]
	if ok && epochOf(old) > epoch {
		return
	}
	if !ok && len(answers) >= maxMemoShapes {
		for k := range answers {
			delete(answers, k)
			break
		}
	}
	answers[string(key)] = a
}

func (m *memo) noGPUs(key []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.noGPU[string(key)]
	return ok
}

// storeNoGPUs remembers a shape without Tessera resources; the set starts
// over when full (maxLoggedWorkloads shapes), as the answer is cheap to
// find again.
func (m *memo) storeNoGPUs(key []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.noGPU) >= maxLoggedWorkloads {
		clear(m.noGPU)
	}
	m.noGPU[string(key)] = struct{}{}
}

// setsOf is the shape's last answer, at whatever epoch.
func (m *memo) setsOf(key []byte) *setsAnswer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sets[string(key)]
}

func (m *memo) storeSets(key []byte, a *setsAnswer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	storeNewest(m.sets, key, a, a.epoch, func(old *setsAnswer) uint64 { return old.epoch })
}

// setsFlight is one component-set answer being computed at epoch; answer
// is set before done is closed, and stays nil when the computation was
// interrupted (the waiters then compute it themselves).
type setsFlight struct {
	epoch  uint64
	done   chan struct{}
	answer *setsAnswer
}

// joinSets returns the flight computing the shape at epoch, and whether the
// caller leads it (and must finish it with landSets).
func (m *memo) joinSets(key []byte, epoch uint64) (*setsFlight, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.flights[string(key)]; ok && f.epoch == epoch {
		return f, false
	}
	f := &setsFlight{epoch: epoch, done: make(chan struct{})}
	m.flights[string(key)] = f
	return f, true
}

// landSets finishes a flight the caller leads, remembering its answer (nil
// when interrupted).
func (m *memo) landSets(key []byte, f *setsFlight, a *setsAnswer) {
	if a != nil {
		m.storeSets(key, a)
	}
	m.mu.Lock()
	if m.flights[string(key)] == f {
		delete(m.flights, string(key))
	}
	m.mu.Unlock()
	f.answer = a
	close(f.done)
}

// replicaKey encodes a replica request's shape into buf.
func replicaKey(buf []byte, rr *pb.ReplicaRequirements) ([]byte, error) {
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf[:0], rr)
	if err != nil {
		return buf, fmt.Errorf("encode the request's shape: %w", err)
	}
	return out, nil
}

// componentsKey encodes a component-set request's shape into buf: each
// component after its length (4 bytes, written once it is encoded), so
// that no two lists encode alike.
func componentsKey(buf []byte, components []*pb.Component) ([]byte, error) {
	buf = buf[:0]
	for _, c := range components {
		start := len(buf)
		buf = append(buf, 0, 0, 0, 0)
		var err error
		if buf, err = (proto.MarshalOptions{Deterministic: true}).MarshalAppend(buf, c); err != nil {
			return buf, fmt.Errorf("encode the request's shape: %w", err)
		}
		binary.LittleEndian.PutUint32(buf[start:], uint32(len(buf)-start-4)) // #nosec G115 -- a request is far below 4 GiB
	}
	return buf, nil
}

// memoEstimate answers a replica request from the memo where it can:
// unchanged nodes keep their answer, changed ones (from the table's
// history) are recomputed, and a shape not seen at a reachable epoch is
// computed in one parallel pass and remembered.
func (p *Plugin) memoEstimate(ctx context.Context, view *clusterView, req *Requirement, key []byte) *replicaAnswer {
	t := view.table
	prev := p.memo.replica(key)
	if prev != nil && prev.epoch == t.epoch {
		return prev
	}
	if prev != nil && prev.nodes == len(t.gens) {
		if changed, ok := t.changesSince(prev.epoch); ok && len(changed) <= len(t.gens)/incrementalShare {
			a := &replicaAnswer{epoch: t.epoch, nodes: prev.nodes, copies: slices.Clone(prev.copies), total: prev.total,
				stock: slices.Clone(prev.stock), stockTotal: prev.stockTotal}
			for _, i := range changed {
				n, s := p.copiesAt(view, int(i), req)
				if a.copies != nil {
					a.total += int64(n) - int64(a.copies[i])
					a.copies[i] = n
				}
				if a.stock != nil {
					a.stockTotal += s - a.stock[i] // wraps as Karmada's sum does
					a.stock[i] = s
				}
			}
			p.memo.storeReplica(key, a)
			return a
		}
	}
	a := &replicaAnswer{epoch: t.epoch, nodes: len(t.gens)}
	if req.AsksForGPUs {
		a.copies = make([]int32, a.nodes)
	}
	if p.stock != nil {
		a.stock = make([]int32, a.nodes)
	}
	p.parallelizer.Until(ctx, a.nodes, func(i int) {
		n, s := p.copiesAt(view, i, req)
		if a.copies != nil {
			a.copies[i] = n
		}
		if a.stock != nil {
			a.stock[i] = s
		}
	})
	if ctx.Err() != nil {
		return a // an interrupted pass is not remembered
	}
	for _, n := range a.copies {
		a.total += int64(n)
	}
	for _, s := range a.stock {
		a.stockTotal += s
	}
	p.memo.storeReplica(key, a)
	return a
}

// copiesAt is node i's share of the sums: 0 where the replica may not
// land, else Tessera's per-node minimum, clamped as sumOverNodes clamps it,
// and Karmada's noderesource answer (its resource division alone,
// converted to int32 as it converts it).
func (p *Plugin) copiesAt(view *clusterView, i int, req *Requirement) (tessera, stock int32) {
	ni := view.nodes[i]
	if !req.matches(ni) {
		return 0, 0
	}
	n := resourceCopies(ni, nil, &req.Resources)
	stock = int32(n) // #nosec G115 -- truncated exactly as Karmada's noderesource truncates it
	if n > 0 && req.AsksForGPUs {
		n = min(n, int64(vgpu.MaxReplicas(view.devices(i), req.GPU)))
	}
	return int32(min(n, math.MaxInt32)), stock
}
