package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"
	"github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework"

	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator"
)

// maxSnapshots bounds the snapshots the server holds. Each holds a clone of
// every NodeInfo (about 6 MB at 5,000 nodes, 60 MB at 50,000), as every
// in-flight request of Karmada's own estimator does; a new one costs that
// clone, so beyond the bound a request waits for one to be released
// rather than build another.
const maxSnapshots = 4

// versionedCache is Karmada's scheduler cache counting its changes: a
// snapshot brought up to date when the count was v holds every change made
// before v was read, so while the count stays at v it is current without
// being touched. Every change goes through it (the informer handlers hold
// it, not the cache); the count moves after the change is made.
type versionedCache struct {
	schedcache.Cache
	changes atomic.Uint64
}

func newVersionedCache(c schedcache.Cache) *versionedCache { return &versionedCache{Cache: c} }

func (c *versionedCache) AssumePod(pod *corev1.Pod) error {
	defer c.changes.Add(1)
	return c.Cache.AssumePod(pod)
}

func (c *versionedCache) FinishBinding(pod *corev1.Pod) error {
	defer c.changes.Add(1)
	return c.Cache.FinishBinding(pod)
}

func (c *versionedCache) ForgetPod(pod *corev1.Pod) error {
	defer c.changes.Add(1)
	return c.Cache.ForgetPod(pod)
}

func (c *versionedCache) AddPod(pod *corev1.Pod) error {
	defer c.changes.Add(1)
	return c.Cache.AddPod(pod)
}

func (c *versionedCache) UpdatePod(oldPod, newPod *corev1.Pod) error {
	defer c.changes.Add(1)
	return c.Cache.UpdatePod(oldPod, newPod)
}

func (c *versionedCache) RemovePod(pod *corev1.Pod) error {
	defer c.changes.Add(1)
	return c.Cache.RemovePod(pod)
}

func (c *versionedCache) AddNode(node *corev1.Node) *framework.NodeInfo {
	defer c.changes.Add(1)
	return c.Cache.AddNode(node)
}

func (c *versionedCache) UpdateNode(oldNode, newNode *corev1.Node) *framework.NodeInfo {
	defer c.changes.Add(1)
	return c.Cache.UpdateNode(oldNode, newNode)
}

func (c *versionedCache) RemoveNode(node *corev1.Node) error {
	defer c.changes.Add(1)
	return c.Cache.RemoveNode(node)
}

// snapshots hands requests up-to-date snapshots of Karmada's scheduler
// cache. Karmada's estimator builds a new snapshot per request, cloning
// every NodeInfo (6 ms at 5,000 nodes, 100 ms at 50,000,
// docs/benchmarks.md). Here requests share the current snapshot while the
// cache has not changed (plugins only read it: Karmada's noderesource
// clones a NodeInfo before changing it), and a snapshot is brought up to
// date with UpdateSnapshot, which clones only the NodeInfos changed since
// and edits the snapshot in place, only while no request holds it, as
// kube-scheduler keeps one snapshot for good.
type snapshots struct {
	cache *versionedCache
	mu    sync.Mutex
	// released is broadcast when a request releases a snapshot.
	released *sync.Cond
	// current is the snapshot last brought up to date; free are the others
	// no request holds; alive counts all, held or not.
	current *pooledSnapshot
	free    []*pooledSnapshot
	alive   int
	// waiting counts the requests waiting for a release.
	waiting int
}

func newSnapshots(cache *versionedCache) *snapshots {
	p := &snapshots{cache: cache}
	p.released = sync.NewCond(&p.mu)
	return p
}

// pooledSnapshot is a snapshot with the change count it was brought up to
// date at and the requests holding it.
type pooledSnapshot struct {
	*schedcache.Snapshot
	version uint64
	holders int
}

// context tells Tessera's plugin which content the snapshot holds, so
// that requests on an unchanged snapshot skip checking every node.
func (s *pooledSnapshot) context(ctx context.Context) context.Context {
	return estimator.WithSnapshotVersion(ctx, estimator.SnapshotVersion{Snapshot: s.Snapshot, Version: s.version})
}

// acquire returns an up-to-date snapshot; release gives it back. The
// update runs under the pool's lock: requests arriving meanwhile need the
// same update and share its result. When every snapshot is held by a
// request and none is current, it waits for one to be released.
func (p *snapshots) acquire() (*pooledSnapshot, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		version := p.cache.changes.Load()
		cur := p.current
		if cur != nil && cur.version == version {
			cur.holders++
			return cur, nil
		}
		var s *pooledSnapshot
		switch n := len(p.free); {
		case cur != nil && cur.holders == 0:
			s = cur
		case n > 0:
			s, p.free = p.free[n-1], p.free[:n-1]
		case p.alive < maxSnapshots:
			s = &pooledSnapshot{Snapshot: schedcache.NewEmptySnapshot()}
			p.alive++
		default:
			p.waiting++
			p.released.Wait()
			p.waiting--
			continue
		}
		if err := p.cache.UpdateSnapshot(s.Snapshot); err != nil {
			// Karmada leaves a snapshot it found inconsistent half updated:
			// it is dropped, and the next request starts afresh.
			if s == cur {
				p.current = nil
			}
			p.alive--
			p.released.Broadcast()
			return nil, fmt.Errorf("snapshot the scheduler cache: %w", err)
		}
		s.version = version
		if cur != nil && cur != s && cur.holders == 0 {
			p.free = append(p.free, cur)
		}
		p.current = s
		s.holders++
		return s, nil
	}
}

func (p *snapshots) release(s *pooledSnapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.holders--
	if s.holders == 0 {
		if s != p.current {
			p.free = append(p.free, s)
		}
		p.released.Broadcast()
	}
}
