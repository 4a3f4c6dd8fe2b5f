package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/hookenv"
)

// Event reasons of the resolver.
const (
	// reasonDisagreement: the kubelet gave a container GPUs its pod's
	// assignment does not name (a scheduler bug, worth an alert).
	reasonDisagreement = "TesseraGPUAssignmentMismatch"
	// reasonRefused: the container holds GPUs but its pod cannot be given
	// limits (its annotations cannot be used).
	reasonRefused = "TesseraGPURefused"
)

// resolveLoop resolves allocations until ctx is done: a pass right after
// each Allocate (the nudge), then with backoff while any allocation waits,
// and a slow resync otherwise (which also notices a kubelet restarted with
// running pods, and repairs any limits file that differs from the record).
func (p *Plugin) resolveLoop(ctx context.Context) {
	p.pollLoop(ctx, p.allocs.nudge, func(ctx context.Context, retryIn time.Duration) bool {
		waiting, err := p.resolveOnce(ctx)
		if err != nil && ctx.Err() == nil {
			p.logger.Error(err, "Resolving GPU allocations through the kubelet's PodResources API; will retry",
				"waiting", waiting, "retryIn", retryIn)
		}
		return err != nil || waiting > 0
	})
}

// pollLoop runs pass at once, on every nudge, and again after a backoff
// (resolveMinPoll doubling to resolveMaxPoll) while pass says to retry,
// or after resolveResync otherwise, until ctx ends. pass is told the
// backoff it would retry in.
func (p *Plugin) pollLoop(ctx context.Context, nudge <-chan struct{}, pass func(ctx context.Context, retryIn time.Duration) (retry bool)) {
	backoff := p.tune.resolveMinPoll
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-nudge:
			backoff = p.tune.resolveMinPoll
		case <-timer.C:
		}
		wait := p.tune.resolveResync
		if pass(ctx, backoff) {
			wait = backoff
			backoff = min(backoff*2, p.tune.resolveMaxPoll)
		} else {
			backoff = p.tune.resolveMinPoll
		}
		timer.Reset(wait)
	}
}

// resolveOnce asks the kubelet once which pod and container hold each
// allocation and delivers the limits of every one it names. It returns how
// many allocations still wait.
func (p *Plugin) resolveOnce(ctx context.Context) (int, error) {
	// Before the List: see allocTable.snapshot.
	snap := p.allocs.snapshot()
	lctx, cancel := context.WithTimeout(ctx, p.tune.podResourcesTimeout)
	containers, err := p.podResources.list(lctx, p.opts.ResourceName)
	cancel()
	if err != nil {
		_, waiting := p.allocs.counts()
		p.metrics.waiting.Set(float64(waiting))
		return waiting, err
	}
	named := make(map[string]bool, len(snap))
	listedPods := map[string]bool{}
	for _, kc := range containers {
		listedPods[kc.namespace+"/"+kc.pod] = true
		if len(kc.devices) == 0 {
			continue
		}
		key := allocationKey(kc.devices)
		a, ok := snap[key]
		if !ok {
			continue // Not allocated by this agent (or before allocations existed).
		}
		named[key] = true
		if a.owner != nil && a.owner.Namespace == kc.namespace && a.owner.Pod == kc.pod && a.owner.Container == kc.container {
			continue
		}
		entries := p.index.byName(kc.namespace, kc.pod)
		if len(entries) == 0 {
			// The kubelet saw the pod before this agent's informer did.
			p.fetchPods(ctx, []podName{{kc.namespace, kc.pod}})
			entries = p.index.byName(kc.namespace, kc.pod)
		}
		entry, ok := pickEntry(entries, kc.container, a)
		if !ok {
			p.logger.V(2).Info("The kubelet names a pod this agent cannot tell yet; waiting",
				"pod", kc.namespace+"/"+kc.pod, "container", kc.container, "candidates", len(entries))
			continue
		}
		p.deliver(ctx, a, entry, kc.container)
	}
	p.resolveInitContainers(ctx, snap, named, listedPods)
	_, waiting := p.allocs.counts()
	p.metrics.waiting.Set(float64(waiting))
	return waiting, nil
}

// pickEntry chooses among the live pods of one name the one whose container
// can hold the allocation: one pod, or the one pod whose container is
// assigned exactly the allocation's GPUs.
func pickEntry(entries []*podEntry, container string, a *allocation) (*podEntry, bool) {
	if len(entries) == 1 {
		return entries[0], true
	}
	var match []*podEntry
	for _, e := range entries {
		if c := e.container(container); c != nil && sameSet(c.gpus, a.gpus) {
			match = append(match, e)
		}
	}
	if len(match) == 1 {
		return match[0], true
	}
	return nil, false
}

// resolveInitContainers resolves allocations the kubelet's List does not
// name: the PodResources API lists no ordinary init containers. Such an
// allocation is resolved to the init container of a pod the kubelet lists
// whose assignment names exactly its slots. That is exact, not a guess: the
// extender never assigns one slot to two live containers, and the kubelet
// gave these slots because GetPreferredAllocation preferred them for it.
func (p *Plugin) resolveInitContainers(ctx context.Context, snap map[string]*allocation, named, listedPods map[string]bool) {
	for key, a := range snap {
		if a.owner != nil || named[key] {
			continue
		}
		var found []*podEntry
		var name string
		for pod := range listedPods {
			ns, n, _ := strings.Cut(pod, "/")
			for _, e := range p.index.byName(ns, n) {
				for _, c := range e.initContainers() {
					if slices.Equal(c.slots, a.slots) {
						found, name = append(found, e), c.name
					}
				}
			}
		}
		if len(found) == 1 {
			p.deliver(ctx, a, found[0], name)
		}
	}
}

// deliver writes the limits of container of entry's pod into allocation a,
// or a refusal when the pod's assignment does not fit what the kubelet
// gave, and records the container as served.
func (p *Plugin) deliver(ctx context.Context, a *allocation, e *podEntry, container string) {
	logger := p.logger.WithValues("pod", klog.KObj(e.pod), "container", container, "allocation", a.key)
	limits, refused, disagreement := limitsFor(a, e, container)
	owner := ownerRecord{ID: a.id, PodUID: string(e.pod.UID), Namespace: e.pod.Namespace, Pod: e.pod.Name,
		Container: container, Refused: refused}
	data, err := hookenv.EncodeLimits(limits)
	if err != nil {
		logger.Error(err, "Encoding limits failed")
		return
	}
	unlock := p.keyLocks.lock(types.UID(a.key))
	if !p.allocs.isCurrent(a) {
		unlock()
		return // Allocated again since the List: the next pass decides.
	}
	err = p.store.resolve(a.key, data, owner)
	if err == nil {
		err = p.store.linkRegion(p.regions, owner.PodUID, container, a.key)
	}
	if err == nil && !p.allocs.resolved(a, owner) {
		unlock()
		return
	}
	unlock()
	if err != nil {
		logger.Error(err, "Delivering limits failed; will retry")
		return
	}
	p.metrics.resolved.Inc()
	switch {
	case disagreement:
		p.metrics.disagreements.Inc()
		logger.Error(nil, "The kubelet gave a container GPUs its pod's assignment does not name; CUDA is refused to it",
			"kubeletGPUs", a.gpus, "reason", refused)
		p.recorder.Event(e.pod, corev1.EventTypeWarning, reasonDisagreement, clipEvent(refused))
	case refused != "":
		logger.Error(nil, "Container holds GPUs its pod cannot be given limits for; CUDA is refused to it", "reason", refused)
		p.recorder.Event(e.pod, corev1.EventTypeWarning, reasonRefused, clipEvent(refused))
	default:
		logger.Info("Allocation resolved", "slots", a.slots, "waited", time.Since(a.created).Round(time.Millisecond))
	}
	p.index.markServed(e.pod.UID, container)
	p.records.add(e.pod.UID) // Written by recordLoop: see pendingRecords.
}

// limitsFor is what container of e gets in allocation a: its assignment's
// limits in the allocation's GPU order, or a refusal. disagreement is set
// when the kubelet's GPUs are not the assignment's.
func limitsFor(a *allocation, e *podEntry, container string) (l hookenv.Limits, refused string, disagreement bool) {
	l.Allocation = a.id
	who := fmt.Sprintf("container %q of pod %s", container, e.key())
	c := e.container(container)
	switch {
	case e.problem != "":
		refused = fmt.Sprintf("%s holds GPUs %s but %s", who, strings.Join(a.gpus, ","), e.problem)
	case c == nil:
		refused = fmt.Sprintf("%s holds GPUs %s but its pod assigns it none", who, strings.Join(a.gpus, ","))
	case !sameSet(c.gpus, a.gpus) || len(a.slots) != len(a.gpus):
		refused = fmt.Sprintf("the kubelet gave %s slots %s (GPUs %s), but its assignment names GPUs %s",
			who, strings.Join(a.slots, ","), strings.Join(a.gpus, ","), strings.Join(c.gpus, ","))
		disagreement = true
	}
	if refused != "" {
		l.Refused = hookenv.SanitizeReason("tessera: " + refused)
		return l, l.Refused, disagreement
	}
	for _, uuid := range a.gpus {
		for _, d := range c.devices {
			if d.UUID == uuid {
				l.Devices = append(l.Devices, hookenv.DeviceLimit{UUID: d.UUID, MemoryMiB: d.MemoryMiB, CorePercent: d.Cores})
			}
		}
	}
	return l, "", false
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func clipEvent(msg string) string {
	if len(msg) > maxEventMessage {
		return strings.ToValidUTF8(msg[:maxEventMessage-3], "") + "..."
	}
	return msg
}

// waitResolved waits until the allocation of slots is resolved, for
// PreStartContainer: the kubelet calls it after it recorded the allocation,
// so PodResources names the container by then and the wait is one pass.
func (p *Plugin) waitResolved(ctx context.Context, slots []string) (*ownerRecord, error) {
	sorted := slices.Clone(slots)
	slices.Sort(sorted)
	key := allocationKey(sorted)
	a, ok := p.allocs.current(key)
	if !ok {
		return nil, fmt.Errorf("no allocation of slots %s on node %s (was it allocated by another agent?)", quoteList(sorted), p.opts.NodeName)
	}
	p.allocs.poke()
	t := time.NewTimer(p.tune.preStartWait)
	defer t.Stop()
	select {
	case <-a.done:
		p.allocs.mu.Lock()
		owner := a.owner
		p.allocs.mu.Unlock()
		return owner, nil
	case <-t.C:
		return nil, fmt.Errorf("the kubelet's PodResources API did not name the container holding slots %s within %v",
			quoteList(sorted), p.tune.preStartWait)
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the container holding slots %s: %w", quoteList(sorted), ctx.Err())
	}
}
