package fleetweb

import (
	"context"
	"errors"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// Snapshot is what the page is drawn from: the latest fleet state that was
// read, and the error of the latest read when that read failed.
type Snapshot struct {
	// State is the latest state read; nil until a read succeeds.
	State *fleet.State
	// Err is why the latest read failed (Karmada's API server did not list
	// its clusters); nil when it succeeded. The State, if any, is then older.
	Err error
	// ErrAt is when the failed read began.
	ErrAt time.Time
}

// Source gives the server the fleet's latest state. It must be safe for
// concurrent use; the server never blocks a request on a read.
type Source interface {
	Latest() Snapshot
}

// Static is a Source that always gives the same state, for tests and
// benchmarks.
type Static struct{ State *fleet.State }

// Latest returns the state.
func (s Static) Latest() Snapshot { return Snapshot{State: s.State} }

// ReadFunc reads the fleet once, as (*fleet.Reader).Read does.
type ReadFunc func(context.Context) (*fleet.State, error)

// Poller reads the fleet on an interval and keeps the latest result. A
// member that cannot be read is already a value in the state (the reader
// keeps its last good data); a failed read as a whole keeps the previous
// state and records the error, so that the page never goes blank.
type Poller struct {
	read     ReadFunc
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	latest Snapshot
	// ready is closed after the first read, good or not.
	ready     chan struct{}
	readyOnce sync.Once
}

// NewPoller returns a Poller that calls read every interval once Run starts.
func NewPoller(read ReadFunc, interval time.Duration) (*Poller, error) {
	if read == nil {
		return nil, errors.New("create fleet poller: no read function")
	}
	if interval <= 0 {
		return nil, errors.New("create fleet poller: the refresh interval must be positive")
	}
	return &Poller{read: read, interval: interval, now: time.Now, ready: make(chan struct{})}, nil
}

// Latest returns the latest snapshot.
func (p *Poller) Latest() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latest
}

// Ready is closed once the first read has finished, good or not.
func (p *Poller) Ready() <-chan struct{} { return p.ready }

// Run reads at once and then every interval until ctx ends. Reads do not
// overlap: a read slower than the interval delays the next one, so a slow
// member cannot pile up concurrent reads against Karmada.
func (p *Poller) Run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	for {
		p.refresh(ctx, logger)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (p *Poller) refresh(ctx context.Context, logger klog.Logger) {
	start := p.now()
	st, err := p.read(ctx)
	if ctx.Err() != nil {
		return // shutting down; keep what was there
	}
	p.mu.Lock()
	if err != nil {
		logger.Error(err, "Reading the fleet failed; the page keeps the previous state")
		p.latest.Err, p.latest.ErrAt = err, start
	} else {
		p.latest = Snapshot{State: st}
		unreachable := 0
		for _, c := range st.Fleet.Clusters {
			if !c.Reachable {
				unreachable++
			}
		}
		logger.V(2).Info("Read the fleet", "clusters", len(st.Fleet.Clusters), "unreachable", unreachable, "took", p.now().Sub(start))
	}
	p.mu.Unlock()
	p.readyOnce.Do(func() { close(p.ready) })
}
