package deviceplugin

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
)

// pendingRecords are the pods whose served containers the Allocated
// annotation may not list yet. A pod joins when a container's limits are
// delivered (or, after a restart, when a resolved allocation's container is
// missing from its annotation) and leaves once a patch settles it. The
// patches run in a loop of their own (recordLoop), bounded by the agent's
// context: an API server that hangs (its etcd down) then delays the records
// only, never the resolver and so the next container's limits, nor the
// agent's shutdown; one that is unreachable for a while costs a retry, not
// the record. Before, each patch ran inside the resolver's pass, up to 10 s
// with a context that ignored the shutdown, and a failed one was never
// retried: the chaos run (test/e2e) restarts members' etcd and API servers
// under running pods, where both cost.
type pendingRecords struct {
	mu sync.Mutex
	// uids counts the additions of each pending pod: a patch settles the
	// additions it saw, not one made while it ran (another container
	// delivered meanwhile, which its read of the served containers missed).
	uids  map[types.UID]uint64
	nudge chan struct{} // wakes recordLoop; buffered, never closed
}

func newPendingRecords() *pendingRecords {
	return &pendingRecords{uids: map[types.UID]uint64{}, nudge: make(chan struct{}, 1)}
}

func (r *pendingRecords) add(uid types.UID) {
	r.mu.Lock()
	r.uids[uid]++
	r.mu.Unlock()
	select {
	case r.nudge <- struct{}{}:
	default:
	}
}

// done settles uid as of the snapshot that counted seen additions.
func (r *pendingRecords) done(uid types.UID, seen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.uids[uid] == seen {
		delete(r.uids, uid)
	}
}

func (r *pendingRecords) snapshot() map[types.UID]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.uids)
}

func (r *pendingRecords) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.uids)
}

// recordLoop writes pending records when nudged, and retries the ones
// that failed on the resolver's backoff, until ctx ends.
func (p *Plugin) recordLoop(ctx context.Context) {
	p.pollLoop(ctx, p.records.nudge, func(ctx context.Context, _ time.Duration) bool {
		p.flushRecords(ctx)
		return p.records.len() > 0
	})
}

// flushRecords patches every pending pod's annotation, each within
// patchTimeout. A pod whose patch failed for a reason that passes (the API
// server unreachable, slow, overloaded) stays pending for the next pass;
// one the API server refuses for good is dropped, with the log line.
func (p *Plugin) flushRecords(ctx context.Context) {
	for uid, seen := range p.records.snapshot() {
		if ctx.Err() != nil {
			return
		}
		pctx, cancel := context.WithTimeout(ctx, p.tune.patchTimeout)
		err := p.recordPod(pctx, uid)
		cancel()
		switch {
		case err == nil:
			p.records.done(uid, seen)
		case permanentRecordError(err):
			p.records.done(uid, seen)
			p.logger.Error(err, "Recording the served containers in the pod's annotation failed; not retried", "podUID", uid, "annotation", p.opts.Keys.Allocated)
		case ctx.Err() == nil:
			p.logger.Error(err, "Recording the served containers in the pod's annotation failed; will retry", "podUID", uid, "annotation", p.opts.Keys.Allocated)
		}
	}
}

// permanentRecordError says whether another patch cannot succeed either.
func permanentRecordError(err error) bool {
	return errors.Is(err, errPodReplaced) || apierrors.IsForbidden(err) || apierrors.IsInvalid(err) ||
		apierrors.IsBadRequest(err) || apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err)
}

// restoreServed is restoreAllocations' part for a resolved allocation: its
// container is served (so GetPreferredAllocation never offers its slots to
// another pod, even before the informer delivers its pod), and if the pod's
// annotation does not list it (the agent stopped before its patch went
// through), it is recorded again. A pod the informer has not delivered is
// read by name for that.
func (p *Plugin) restoreServed(ctx context.Context, owner *ownerRecord) {
	uid := types.UID(owner.PodUID)
	p.index.markRestoredServed(uid, owner.Container)
	if !p.index.hasPod(uid) {
		p.fetchPods(ctx, []podName{{owner.Namespace, owner.Pod}})
	}
	if p.index.annotationLacks(uid, owner.Container) {
		p.records.add(uid)
	}
}
