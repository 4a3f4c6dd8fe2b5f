package server

import (
	"fmt"
	"sync"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"
)

// maxPooledSnapshots bounds the snapshots kept between requests. Each holds
// a clone of every NodeInfo (about 6 MB at 5,000 nodes, 60 MB at 50,000),
// as every in-flight request of Karmada's own estimator does; requests
// beyond the pool build a fresh one, as Karmada's estimator always does.
const maxPooledSnapshots = 4

// snapshots hands each request a snapshot of Karmada's scheduler cache of
// its own, brought up to date with UpdateSnapshot. Karmada's estimator
// builds a new snapshot per request, cloning every NodeInfo (6 ms at 5,000
// nodes, 100 ms at 50,000, docs/benchmarks.md); a pooled snapshot clones
// only the NodeInfos changed since it was last used, as kube-scheduler
// keeps one snapshot for good. A snapshot is used by one request at a time
// (UpdateSnapshot edits NodeInfos in place), and plugins only read it:
// Karmada's noderesource clones a NodeInfo before changing it.
type snapshots struct {
	cache schedcache.Cache
	mu    sync.Mutex
	free  []*schedcache.Snapshot
}

// acquire returns an up-to-date snapshot; release gives it back.
func (p *snapshots) acquire() (*schedcache.Snapshot, error) {
	p.mu.Lock()
	var s *schedcache.Snapshot
	if n := len(p.free); n > 0 {
		s, p.free = p.free[n-1], p.free[:n-1]
	}
	p.mu.Unlock()
	if s == nil {
		s = schedcache.NewEmptySnapshot()
	}
	if err := p.cache.UpdateSnapshot(s); err != nil {
		// Karmada leaves a snapshot it found inconsistent half updated:
		// it is dropped, and the next request starts afresh.
		return nil, fmt.Errorf("snapshot the scheduler cache: %w", err)
	}
	return s, nil
}

func (p *snapshots) release(s *schedcache.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxPooledSnapshots {
		p.free = append(p.free, s)
	}
}
