package estimator

import (
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// churnCluster is testcluster's Churn with test-failing helpers.
type churnCluster struct {
	*tc.Churn
}

func newChurnCluster(tb testing.TB, seed uint64, n, podsPerNode int) *churnCluster {
	tb.Helper()
	nodes, pods := tc.Fragmented(seed, n, 8, podsPerNode, []string{"a", "b"})
	return newChurnClusterOf(tb, seed, nodes, pods)
}

// newChurnClusterOf is a churnCluster of the given nodes and pods (which
// should carry "zone" labels), plus n/50 late nodes.
func newChurnClusterOf(tb testing.TB, seed uint64, nodes []*corev1.Node, pods []*corev1.Pod) *churnCluster {
	tb.Helper()
	stop := make(chan struct{})
	tb.Cleanup(func() { close(stop) })
	c, err := tc.NewChurn(seed, nodes, pods, stop)
	if err != nil {
		tb.Fatal(err)
	}
	return &churnCluster{c}
}

// snapshot brings s up to date the way Karmada's scheduler does
// (UpdateSnapshot, incremental on a reused snapshot); nil starts a new one.
func (c *churnCluster) snapshot(tb testing.TB, s *schedcache.Snapshot) *schedcache.Snapshot {
	s, err := c.Snapshot(s)
	if err != nil {
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
