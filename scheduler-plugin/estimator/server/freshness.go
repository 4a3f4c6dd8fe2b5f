package server

import (
	"context"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// freshness tracks when the member cluster's API server last answered.
// Informers keep their last state when the API server goes away and the
// estimator keeps answering from it; the age says how old that state may be.
type freshness struct {
	now   func() time.Time
	probe func(ctx context.Context) error

	mu          sync.Mutex
	lastContact time.Time
	unreachable bool
}

func newFreshness(now func() time.Time, probe func(ctx context.Context) error) *freshness {
	return &freshness{now: now, probe: probe, lastContact: now()}
}

// markContact records that the cluster's state is current as of now.
func (f *freshness) markContact() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastContact = f.now()
}

// Age is how long ago the API server last answered.
func (f *freshness) Age() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now().Sub(f.lastContact)
}

// run probes every interval until ctx ends.
func (f *freshness) run(ctx context.Context, interval, timeout time.Duration) {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			f.probeOnce(ctx, timeout)
		}
	}
}

// probeOnce asks the API server once and logs changes of reachability, and
// every failed probe with the age of the state still being served.
func (f *freshness) probeOnce(ctx context.Context, timeout time.Duration) {
	probeCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := f.probe(probeCtx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.unreachable = true
		klog.ErrorS(err, "Member cluster's API server is unreachable; answering from the last known state",
			"stateAge", f.now().Sub(f.lastContact).Round(time.Second).String())
		return
	}
	if f.unreachable {
		klog.InfoS("Member cluster's API server is reachable again",
			"unreachableFor", f.now().Sub(f.lastContact).Round(time.Second).String())
	}
	f.unreachable = false
	f.lastContact = f.now()
}
