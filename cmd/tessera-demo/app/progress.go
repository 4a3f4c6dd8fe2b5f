package app

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// heartbeatEvery is how often a long step says it is still going: a newcomer
// watching a silent terminal for minutes cannot tell work from a hang.
const heartbeatEvery = 30 * time.Second

// progress prints the demo's steps, each line stamped with the time since
// the demo began, so that every wait is visible and its length known.
type progress struct {
	out       io.Writer
	start     time.Time
	now       func() time.Time
	heartbeat time.Duration // how often a running step says so

	mu sync.Mutex // one line at a time: heartbeats print from goroutines
}

func newProgress(out io.Writer) *progress {
	return &progress{out: out, start: time.Now(), now: time.Now, heartbeat: heartbeatEvery}
}

// stamp is the elapsed time as [m:ss], or [h:mm:ss] past an hour.
func stamp(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("[%d:%02d:%02d]", h, m, s)
	}
	return fmt.Sprintf("[%2d:%02d]", m, s)
}

func (p *progress) printf(prefix, format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, "%s %s%s\n", stamp(p.now().Sub(p.start)), prefix, fmt.Sprintf(format, args...))
}

// line prints a detail of the current step.
func (p *progress) line(format string, args ...any) { p.printf("    ", format, args...) }

// step announces a step and prints a heartbeat while it runs. The returned
// function ends it and prints how long it took (or that it failed).
func (p *progress) step(format string, args ...any) (done func(err error)) {
	title := fmt.Sprintf(format, args...)
	p.printf("==> ", "%s", title)
	begin := p.now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(p.heartbeat)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
				p.line("... %s: still going after %s", title, p.now().Sub(begin).Round(time.Second))
			}
		}
	})
	var once atomic.Bool
	return func(err error) {
		if !once.CompareAndSwap(false, true) {
			return
		}
		close(stop)
		wg.Wait()
		took := p.now().Sub(begin).Round(100 * time.Millisecond)
		if err != nil {
			p.line("FAILED after %s: %v", took, err)
			return
		}
		p.line("done in %s", took)
	}
}

// run is step around fn.
func (p *progress) run(ctx context.Context, title string, fn func(ctx context.Context) error) error {
	done := p.step("%s", title)
	err := fn(ctx)
	done(err)
	return err
}

// demoTB is the cluster.TB of the demo's environment: the servers'
// progress lines go to the terminal with --verbose only, and Failed tells
// the environment to keep its logs once the demo has failed.
type demoTB struct {
	p       *progress
	verbose bool
	failed  atomic.Bool
}

func (t *demoTB) Helper() {}

func (t *demoTB) Logf(format string, args ...any) {
	if t.verbose {
		t.p.line(format, args...)
	}
}

func (t *demoTB) Failed() bool { return t.failed.Load() }
