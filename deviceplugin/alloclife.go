package deviceplugin

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
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
func (p *Plugin) sweepAllocations(ctx context.Context) {
	now := time.Now()
	for _, a := range p.allocs.snapshot() {
		var stale bool
		if a.owner != nil {
			stale = !p.index.hasPod(types.UID(a.owner.PodUID)) && p.podGone(ctx, *a.owner)
		} else {
			stale = now.Sub(a.created) > p.tune.unresolvedTTL
		}
		if stale {
			p.removeAllocation(a)
		}
	}
}

// podGone reports whether the API server confirms that owner's pod is gone
// (not found, or found with another UID). The index alone cannot say so:
// it lags behind the kubelet (a restarted agent's informer lists from the
// API server's watch cache), and removing the allocation of a running
// container takes its limits away. A pod that still exists is added to
// the index, which keeps its region links too; when the API server cannot
// be asked, the allocation is kept for the next sweep.
func (p *Plugin) podGone(ctx context.Context, owner ownerRecord) bool {
	gctx, cancel := context.WithTimeout(ctx, p.tune.refreshTimeout)
	defer cancel()
	pod, err := p.client.CoreV1().Pods(owner.Namespace).Get(gctx, owner.Pod, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true
	case err != nil:
		p.logger.Error(err, "Reading the pod of an allocation before sweeping it; keeping the allocation",
			"pod", owner.Namespace+"/"+owner.Pod, "podUID", owner.PodUID)
		return false
	case string(pod.UID) != owner.PodUID:
		return true
	}
	if pod.Spec.NodeName == p.opts.NodeName && p.index.addIfUnknown(pod) {
		p.logger.V(2).Info("Kept the allocations of a pod the informer has not delivered", "pod", klog.KObj(pod))
	}
	return false
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
