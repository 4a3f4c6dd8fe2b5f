package deviceplugin

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// restoreAllocations reads the allocations a previous life of the agent
// left, so that those not resolved yet are resolved now (an agent restarted
// between Allocate and resolution) and resolved ones are verified against
// the kubelet again. A directory that cannot be read is logged and left to
// the sweep: its container, if any, waits and then fails CUDA, never runs
// unlimited.
func (p *Plugin) restoreAllocations(ctx context.Context) error {
	keys, err := p.store.keys()
	if err != nil {
		return fmt.Errorf("restore allocations: %w", err)
	}
	restored, waiting := 0, 0
	for _, key := range keys {
		rec, owner, err := p.store.load(key)
		if err != nil || allocationKey(rec.Slots) != key {
			p.logger.Error(err, "Ignoring an allocation directory that cannot be read", "allocation", key)
			continue
		}
		p.allocs.put(&allocation{key: key, id: rec.ID, slots: rec.Slots, gpus: rec.GPUs, created: rec.Created, owner: owner})
		restored++
		if owner == nil {
			waiting++
		} else {
			p.restoreServed(ctx, owner)
		}
	}
	if restored > 0 {
		p.logger.Info("Restored allocations", "allocations", restored, "waiting", waiting)
	}
	return nil
}

// sweepAllocations removes the allocations of pods that no longer exist,
// and unresolved ones older than unresolvedTTL.
func (p *Plugin) sweepAllocations() {
	now := time.Now()
	for _, a := range p.allocs.snapshot() {
		var stale bool
		if a.owner != nil {
			stale = !p.index.hasPod(types.UID(a.owner.PodUID))
		} else {
			stale = now.Sub(a.created) > p.tune.unresolvedTTL
		}
		if stale {
			p.removeAllocation(a)
		}
	}
}

// removeAllocations removes the allocations resolved to a deleted pod.
func (p *Plugin) removeAllocations(uid types.UID) {
	for _, a := range p.allocs.ownedBy(string(uid)) {
		p.removeAllocation(a)
	}
}

// removeAllocation removes a, unless the key was allocated again.
func (p *Plugin) removeAllocation(a *allocation) {
	unlock := p.keyLocks.lock(types.UID(a.key))
	defer unlock()
	if !p.allocs.drop(a) {
		return
	}
	if err := p.store.remove(a.key); err != nil {
		p.logger.Error(err, "Removing an allocation directory", "allocation", a.key)
		return
	}
	p.logger.V(2).Info("Removed an allocation", "allocation", a.key, "resolved", a.owner != nil)
}
