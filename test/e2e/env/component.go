package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

// componentStopTimeout bounds how long one in-process component may take
// to stop once its context is cancelled.
const componentStopTimeout = 30 * time.Second

// logFiles hands out one log file per in-process component, so that a
// failure can be read component by component, as the servers' logs are.
type logFiles struct {
	dir       string
	verbosity int

	mu    sync.Mutex
	files []*os.File
}

// context returns ctx with a klog logger that writes to <dir>/<name>.log.
func (l *logFiles) context(ctx context.Context, name string) (context.Context, error) {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log directory %s: %w", l.dir, err)
	}
	f, err := os.OpenFile(l.path(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	l.mu.Lock()
	l.files = append(l.files, f)
	l.mu.Unlock()
	logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(f), textlogger.Verbosity(l.verbosity)))
	return klog.NewContext(ctx, logger), nil
}

// path is the log file of the component called name.
func (l *logFiles) path(name string) string { return filepath.Join(l.dir, name+".log") }

func (l *logFiles) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, f := range l.files {
		_ = f.Close()
	}
	l.files = nil
}

// component is one in-process component: its goroutines run until its own
// context is cancelled.
type component struct {
	name   string
	dump   string // where stop writes every goroutine's stack if the component does not stop
	cancel context.CancelFunc
	done   chan struct{}
	err    error // why run returned; read after done is closed
}

// runComponent starts run in a goroutine with a context of its own that
// logs to the component's file. The component lives until Stop (or its own
// stop), not until ctx ends: ctx is only the context of Start.
func (e *Env) runComponent(ctx context.Context, name string, run func(ctx context.Context) error) (*component, error) {
	logCtx, err := e.logs.context(context.WithoutCancel(ctx), name)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(logCtx)
	c := &component{name: name, dump: e.logs.path(name + "-stuck-goroutines"), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		c.err = run(cctx)
		if c.err != nil && cctx.Err() == nil {
			klog.FromContext(cctx).Error(c.err, "Component stopped with an error before it was asked to stop", "component", name)
		}
	}()
	return c, nil
}

// exited says whether the component has returned, and with what.
func (c *component) exited() (bool, error) {
	select {
	case <-c.done:
		return true, c.err
	default:
		return false, nil
	}
}

// stop cancels the component and waits for it. It returns the component's
// error, or one saying that it did not stop in time; nil when it stopped
// cleanly. Safe on a nil component and more than once.
func (c *component) stop() error {
	if c == nil {
		return nil
	}
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(componentStopTimeout):
		// The goroutines are shared with every other component, but the
		// stuck one's stack names its package: what to fix.
		if f, err := os.Create(c.dump); err == nil {
			_ = pprof.Lookup("goroutine").WriteTo(f, 2)
			_ = f.Close()
		}
		return fmt.Errorf("%s did not stop within %s (every goroutine's stack: %s)", c.name, componentStopTimeout, c.dump)
	}
	if c.err != nil && !errors.Is(c.err, context.Canceled) {
		return fmt.Errorf("%s: %w", c.name, c.err)
	}
	return nil
}
