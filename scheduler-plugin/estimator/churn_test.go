package estimator

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// churnCluster is a member cluster whose pods and nodes change, fed to
// Karmada's scheduler cache and Tessera's GPU cache through the same calls
// the estimator server's informer handlers make.
type churnCluster struct {
	sched   schedcache.Cache
	gpus    *gpucache.Cache
	nodes   []*corev1.Node
	pods    []*corev1.Pod
	present []bool
	// unbound are pods with a GPU assignment but no node yet: the GPU cache
	// counts them, Karmada's snapshot does not, so toggling one changes a
	// node's GPU state and not its NodeInfo generation.
	unbound        []*corev1.Pod
	unboundPresent []bool
	// late are empty nodes Karmada's cache holds from the start and the GPU
	// cache learns of later, one per change that picks it: the GPU cache has
	// no slot for their names until then.
	late []*corev1.Node
	rng  *rand.Rand
}

func newChurnCluster(tb testing.TB, seed uint64, n, podsPerNode int) *churnCluster {
	tb.Helper()
	nodes, pods := tc.Fragmented(seed, n, 8, podsPerNode, []string{"a", "b"})
	stop := make(chan struct{})
	tb.Cleanup(func() { close(stop) })
	c := &churnCluster{
		sched: schedcache.New(0, stop), gpus: gpucache.New(annotations.DefaultKeys()),
		nodes: nodes, present: make([]bool, len(pods)), rng: rand.New(rand.NewPCG(seed, 7)),
	}
	for _, node := range nodes {
		c.sched.AddNode(node)
		c.gpus.UpsertNode(node)
	}
	for i := range max(n/50, 1) {
		spec := tc.NodeSpec{Name: fmt.Sprintf("late-%d", i), MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110}
		for g := range 8 {
			spec.GPUs = append(spec.GPUs, tc.GPU(spec.Name, g))
		}
		node := tc.Node(spec)
		c.sched.AddNode(node)
		c.late = append(c.late, node)
	}
	for i, p := range pods {
		if i%10 == 9 { // every tenth assigned pod is not bound yet
			u := p.DeepCopy()
			u.Spec.NodeName = ""
			c.unbound = append(c.unbound, u)
			c.unboundPresent = append(c.unboundPresent, true)
			c.gpus.UpsertPod(u)
			continue
		}
		c.pods = append(c.pods, p)
		c.present[len(c.pods)-1] = true
		if err := c.sched.AddPod(p); err != nil {
			tb.Fatal(err)
		}
		c.gpus.UpsertPod(p)
	}
	c.present = c.present[:len(c.pods)]
	return c
}

// change applies one random change: mostly a bound pod leaving or coming
// back, sometimes an unbound one (GPU state only), sometimes a node's taint
// or zone label flipping (matching only).
func (c *churnCluster) change() {
	switch r := c.rng.IntN(20); {
	case r == 1 && len(c.late) > 0:
		c.gpus.UpsertNode(c.late[0])
		c.late = c.late[1:]
	case r == 0:
		i := c.rng.IntN(len(c.nodes))
		old := c.nodes[i]
		node := old.DeepCopy()
		if c.rng.IntN(2) == 0 {
			if len(node.Spec.Taints) == 0 {
				node.Spec.Taints = []corev1.Taint{{Key: "gpu", Value: "reserved", Effect: corev1.TaintEffectNoSchedule}}
			} else {
				node.Spec.Taints = nil
			}
		} else if node.Labels["zone"] == "a" {
			node.Labels["zone"] = "b"
		} else {
			node.Labels["zone"] = "a"
		}
		c.sched.UpdateNode(old, node)
		c.gpus.UpsertNode(node)
		c.nodes[i] = node
	case r <= 4 && len(c.unbound) > 0:
		i := c.rng.IntN(len(c.unbound))
		if c.unboundPresent[i] {
			c.gpus.DeletePod(c.unbound[i])
		} else {
			c.gpus.UpsertPod(c.unbound[i])
		}
		c.unboundPresent[i] = !c.unboundPresent[i]
	default:
		i := c.rng.IntN(len(c.pods))
		p := c.pods[i]
		if c.present[i] {
			_ = c.sched.RemovePod(p) // errors only for a pod it does not hold
			c.gpus.DeletePod(p)
		} else {
			_ = c.sched.AddPod(p)
			c.gpus.UpsertPod(p)
		}
		c.present[i] = !c.present[i]
	}
}

// snapshot brings s up to date the way Karmada's scheduler does
// (UpdateSnapshot, incremental on a reused snapshot); nil starts a new one.
func (c *churnCluster) snapshot(tb testing.TB, s *schedcache.Snapshot) *schedcache.Snapshot {
	if s == nil {
		s = schedcache.NewEmptySnapshot()
	}
	if err := c.sched.UpdateSnapshot(s); err != nil {
		tb.Error(err) // Error, not Fatal: the churn goroutine calls this too
	}
	return s
}

// liveSnapshots lets one goroutine apply changes while others ask
// questions: two snapshots updated in turn with UpdateSnapshot (which edits
// NodeInfos in place), readers holding the one they read.
type liveSnapshots struct {
	cur  atomic.Int32
	bufs [2]struct {
		mu   sync.RWMutex
		snap *schedcache.Snapshot
	}
}

func newLiveSnapshots(tb testing.TB, c *churnCluster) *liveSnapshots {
	l := &liveSnapshots{}
	for i := range l.bufs {
		l.bufs[i].snap = c.snapshot(tb, nil)
	}
	return l
}

// read calls f with the current snapshot, which does not change meanwhile.
func (l *liveSnapshots) read(f func(*schedcache.Snapshot)) {
	b := &l.bufs[l.cur.Load()]
	b.mu.RLock()
	defer b.mu.RUnlock()
	f(b.snap)
}

// publish brings the other snapshot up to date and makes it current.
func (l *liveSnapshots) publish(tb testing.TB, c *churnCluster) {
	next := 1 - l.cur.Load()
	b := &l.bufs[next]
	b.mu.Lock()
	c.snapshot(tb, b.snap)
	b.mu.Unlock()
	l.cur.Store(next)
}
