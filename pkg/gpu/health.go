package gpu

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// healthState is Run's private record of why GPUs are unhealthy; positions
// index Tracker.gpus.
type healthState struct {
	// recoverAt is when each GPU in its quiet period becomes healthy.
	recoverAt map[int]time.Time
	// permanent GPUs stay unhealthy until the agent restarts.
	permanent map[int]bool
}

// waitResult is one answer of EventSet.Wait other than its timeout.
type waitResult struct {
	event nvml.EventData
	ret   nvml.Return
}

// Run watches NVML's critical Xid events and updates GPU health until ctx is
// done (see the package documentation for the health model). It returns nil
// when ctx is done, within about one EventWaitTimeout (an NVML wait cannot be
// interrupted, and the event set is freed only after it returns), and an
// error only when watching cannot start. It may be called once.
func (t *Tracker) Run(ctx context.Context) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("run GPU health tracker: already running or ran")
	}
	logger := klog.FromContext(ctx).WithName("gpu-health")
	set, ret := t.lib.EventSetCreate()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("run GPU health tracker: create NVML event set: %w", ret)
	}
	st := healthState{recoverAt: make(map[int]time.Time), permanent: make(map[int]bool)}
	changed := t.registerEvents(logger, set, st)

	results := make(chan waitResult)
	stopWaiting := make(chan struct{})
	waiterDone := make(chan struct{})
	go func() {
		defer close(waiterDone)
		t.waitEvents(set, results, stopWaiting)
	}()
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		close(stopWaiting)
		<-waiterDone
		if ret := set.Free(); ret != nvml.SUCCESS {
			logger.Error(ret, "Free NVML event set")
		}
	}()

	handled := false
	for {
		if t.recoverDue(logger, st) {
			changed = true
		}
		// Arm the timer for the next recovery before telling anyone about
		// this change, so that a reader of the new state (a test with a
		// fake clock included) can rely on the quiet period having started.
		if timer != nil {
			timer.Stop()
		}
		timer = nil
		var recoveryDue <-chan time.Time
		if wait, ok := st.nextRecovery(t.clock.Now()); ok {
			timer = t.clock.NewTimer(wait)
			recoveryDue = timer.C()
		}
		if changed {
			t.notify()
			changed = false
		}
		if handled && t.afterEvent != nil {
			t.afterEvent()
		}
		handled = false

		select {
		case <-ctx.Done():
			logger.V(2).Info("Stopping GPU health tracker")
			return nil
		case r := <-results:
			changed = t.handleWaitResult(logger, r, st)
			handled = true
		case <-recoveryDue:
		}
	}
}

// registerEvents registers every GPU for Xid events and reports whether any
// GPU became unhealthy because it could not be registered.
func (t *Tracker) registerEvents(logger logr.Logger, set nvml.EventSet, st healthState) bool {
	var failed []int
	for p, dev := range t.devices {
		uuid := t.uuids[p]
		supported, ret := dev.GetSupportedEventTypes()
		if ret == nvml.SUCCESS && supported&nvml.EventTypeXidCriticalError == 0 {
			ret = nvml.ERROR_NOT_SUPPORTED
		}
		if ret == nvml.SUCCESS {
			ret = dev.RegisterEvents(nvml.EventTypeXidCriticalError, set)
		}
		switch ret {
		case nvml.SUCCESS:
		case nvml.ERROR_NOT_SUPPORTED:
			logger.Info("GPU cannot report Xid events; it stays healthy but is not watched", "uuid", uuid)
		default:
			logger.Error(ret, "Register GPU for Xid events failed; marking it unhealthy until the agent restarts", "uuid", uuid)
			st.permanent[p] = true
			failed = append(failed, p)
		}
	}
	return t.setHealth(failed, false)
}

// waitEvents forwards every answer of set.Wait except its timeout to results
// until stop is closed.
func (t *Tracker) waitEvents(set nvml.EventSet, results chan<- waitResult, stop <-chan struct{}) {
	timeoutMs := uint32(t.opts.EventWaitTimeout / time.Millisecond)
	for {
		select {
		case <-stop:
			return
		default:
		}
		event, ret := set.Wait(timeoutMs)
		if ret == nvml.ERROR_TIMEOUT {
			continue
		}
		select {
		case results <- waitResult{event: event, ret: ret}:
		case <-stop:
			return
		}
		if ret != nvml.SUCCESS {
			// A broken event set answers at once, every time: back off so
			// that it costs a log line per wait timeout, not a busy loop.
			select {
			case <-t.clock.After(t.opts.EventWaitTimeout):
			case <-stop:
				return
			}
		}
	}
}

// handleWaitResult applies one event (or wait failure) and reports whether
// any GPU's health changed.
func (t *Tracker) handleWaitResult(logger logr.Logger, r waitResult, st healthState) bool {
	if r.ret != nvml.SUCCESS {
		logger.Error(r.ret, "Wait for NVML events failed; marking every GPU unhealthy")
		return t.markUnhealthy(st, t.allPositions())
	}
	e := r.event
	if e.EventType != nvml.EventTypeXidCriticalError {
		logger.V(4).Info("Skipping NVML event that is not a critical Xid", "type", e.EventType)
		return false
	}
	xid, uuid := e.EventData, eventUUID(e)
	if t.ignored[xid] {
		logger.Info("Ignoring Xid: an application error, not a GPU fault", "xid", xid, "uuid", uuid)
		return false
	}
	if uuid == "" {
		logger.Info("Critical Xid without a device; marking every GPU unhealthy", "xid", xid)
		return t.markUnhealthy(st, t.allPositions())
	}
	p, ok := t.byUUID[uuid]
	if !ok {
		logger.Info("Ignoring critical Xid for a GPU this tracker does not know", "xid", xid, "uuid", uuid)
		return false
	}
	logger.Info("Critical Xid; marking GPU unhealthy", "xid", xid, "uuid", uuid, "recovery", t.opts.Recovery)
	return t.markUnhealthy(st, []int{p})
}

// eventUUID is the UUID of the event's GPU, or "" for an event without one
// (NVML reports "all devices" with a null handle, whose UUID cannot be read).
func eventUUID(e nvml.EventData) string {
	if e.Device == nil {
		return ""
	}
	uuid, ret := e.Device.GetUUID()
	if ret != nvml.SUCCESS {
		return ""
	}
	return uuid
}

func (t *Tracker) allPositions() []int {
	all := make([]int, len(t.uuids))
	for p := range all {
		all[p] = p
	}
	return all
}

// markUnhealthy starts (or restarts) the quiet period of the GPUs at the
// given positions and reports whether any of them was healthy.
func (t *Tracker) markUnhealthy(st healthState, positions []int) bool {
	now := t.clock.Now()
	for _, p := range positions {
		switch {
		case st.permanent[p]:
		case t.opts.Recovery == 0:
			st.permanent[p] = true
		default:
			st.recoverAt[p] = now.Add(t.opts.Recovery)
		}
	}
	return t.setHealth(positions, false)
}

// recoverDue makes healthy every GPU whose quiet period is over and reports
// whether any was.
func (t *Tracker) recoverDue(logger logr.Logger, st healthState) bool {
	now := t.clock.Now()
	var healed []int
	for p, at := range st.recoverAt {
		if !at.After(now) {
			delete(st.recoverAt, p)
			healed = append(healed, p)
			logger.Info("GPU quiet since its last critical Xid; marking it healthy", "uuid", t.uuids[p])
		}
	}
	return t.setHealth(healed, true)
}

// nextRecovery is how long until the earliest quiet period ends, if any.
func (st healthState) nextRecovery(now time.Time) (time.Duration, bool) {
	var earliest time.Time
	for _, at := range st.recoverAt {
		if earliest.IsZero() || at.Before(earliest) {
			earliest = at
		}
	}
	if earliest.IsZero() {
		return 0, false
	}
	return earliest.Sub(now), true
}
