package extender

import (
	"context"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// DefaultBindWait is how long a filter call waits, at most, for the binds of
// the pods filtered before it (see pendingBinds).
const DefaultBindWait = 100 * time.Millisecond

// MaxBindWait is the longest bind wait that makes sense: a filter call must
// answer well within kube-scheduler's extender timeout (httpTimeout, 10s in
// the shipped configuration), and a bind that takes this long is not the
// race the wait is for.
const MaxBindWait = 5 * time.Second

// Results of a filter's wait for earlier binds, the values of the
// filter_bind_waits_total "result" label.
const (
	// WaitArrived: every earlier bind reached the extender and reserved.
	WaitArrived = "arrived"
	// WaitTimedOut: an earlier pod's bind did not come within the wait.
	WaitTimedOut = "timed_out"
	// WaitCanceled: the filter call ended (kube-scheduler gave up) first.
	WaitCanceled = "canceled"
)

// pendingBinds are the pods whose filter passed some node and whose bind has
// not reached the extender yet.
//
// kube-scheduler decides one pod at a time, but binds in the background: it
// picks pod A's node, starts A's bind and at once filters pod B. B's filter
// can reach the extender before A's bind does, see A's node without A's
// reservation, and let kube-scheduler pick that node for B too; B's bind is
// then refused (the room went to A) and B waits out kube-scheduler's backoff.
// The extender cannot see A's node before A's bind names it, so B's filter
// waits, for at most the bind wait, until the pods filtered before it have
// had their binds reserve (or fail). That holds no capacity: a pod whose
// bind never comes (kube-scheduler dropped it after filter) only delays the
// next filter, once, by the wait.
type pendingBinds struct {
	mu   sync.Mutex
	pods map[types.UID]pendingBind
	// settled is closed, and replaced, whenever a pod leaves pods.
	settled chan struct{}
	// waiting counts the filter calls waiting now.
	waiting int
}

type pendingBind struct {
	since time.Time
	// passed are the nodes the pod's filter passed (the filter's answer,
	// which nothing modifies), searched only when a bind is refused.
	passed []string
	// late is set once a filter gave up waiting for this bind: no filter
	// waits for it again, but a late bind's conflict is still counted.
	late bool
}

func newPendingBinds() *pendingBinds {
	return &pendingBinds{pods: map[types.UID]pendingBind{}, settled: make(chan struct{})}
}

// expect records that the pod's filter passed the given nodes at now.
func (p *pendingBinds) expect(uid types.UID, passed []string, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pods[uid] = pendingBind{since: now, passed: passed}
}

// passed reports whether the pod's last filter passed node.
func (p *pendingBinds) passed(uid types.UID, node string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.pods[uid].passed, node)
}

// settle forgets the pod: its bind has reserved, or failed, or the pod is
// gone. Filters waiting for it go on.
func (p *pendingBinds) settle(uid types.UID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.removeLocked(uid)
}

func (p *pendingBinds) removeLocked(uid types.UID) {
	if _, ok := p.pods[uid]; !ok {
		return
	}
	delete(p.pods, uid)
	close(p.settled)
	p.settled = make(chan struct{})
}

// forgetAfter is how long a pending pod is kept after its filter when no
// bind comes: long enough to count a late bind's conflict.
const forgetAfter = time.Minute

// await waits until no pod other than self that was filtered before start
// is pending, giving up on each one wait after its filter. It forgets self
// (a new filter of a pod replaces its earlier one) and pods pending for
// longer than forgetAfter, and returns "" when there was nothing to wait
// for, else one of the Wait results. With wait <= 0 it does not wait.
func (p *pendingBinds) await(ctx context.Context, self types.UID, start time.Time, wait time.Duration) string {
	p.mu.Lock()
	p.removeLocked(self)
	for uid, pb := range p.pods {
		if start.Sub(pb.since) >= forgetAfter {
			p.removeLocked(uid)
		}
	}
	p.mu.Unlock()
	if wait <= 0 {
		return ""
	}
	result := ""
	for {
		p.mu.Lock()
		now := time.Now()
		var deadline time.Time
		for uid, pb := range p.pods {
			switch {
			case pb.late || pb.since.After(start):
				// Given up on already, or filtered after this call began.
			case now.Sub(pb.since) >= wait:
				pb.late = true // its bind is not coming, or not soon
				p.pods[uid] = pb
				result = WaitTimedOut
			case deadline.IsZero() || pb.since.Add(wait).Before(deadline):
				deadline = pb.since.Add(wait)
			}
		}
		settled := p.settled
		p.mu.Unlock()
		if deadline.IsZero() {
			return result
		}
		if result == "" {
			result = WaitArrived
		}
		if !p.sleep(ctx, settled, deadline) {
			return WaitCanceled
		}
	}
}

// sleep waits until settled is closed or the deadline passes (true), or ctx
// ends (false).
func (p *pendingBinds) sleep(ctx context.Context, settled <-chan struct{}, deadline time.Time) bool {
	p.mu.Lock()
	p.waiting++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.waiting--
		p.mu.Unlock()
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-settled:
	case <-timer.C:
	case <-ctx.Done():
		return false
	}
	return true
}

// waitingCount is the number of filter calls waiting now.
func (p *pendingBinds) waitingCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waiting
}
