package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"
)

// serverShutdownTimeout bounds how long an in-flight probe or scrape may
// finish once the agent stops.
const serverShutdownTimeout = 5 * time.Second

// endpoint is one of the agent's HTTP servers (health probes, metrics). It
// listens as soon as it is made, so that a taken port fails NewAgent rather
// than a running agent.
type endpoint struct {
	// what names the endpoint in errors and logs ("health probes").
	what    string
	handler http.Handler
	// ln is nil once serve owns it, or once closed.
	ln net.Listener
	// addr is the address listened on, with the port chosen for ":0".
	addr string
}

// listenEndpoint listens on addr for handler; "0" disables the endpoint
// (nil, nil).
func listenEndpoint(ctx context.Context, what, addr string, handler http.Handler) (*endpoint, error) {
	if addr == "0" {
		return nil, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for %s on %s: %w", what, addr, err)
	}
	return &endpoint{what: what, handler: handler, ln: ln, addr: ln.Addr().String()}, nil
}

// Addr is the address listened on; "" for a disabled endpoint.
func (e *endpoint) Addr() string {
	if e == nil {
		return ""
	}
	return e.addr
}

// serve runs the server in g until gctx is done, then shuts it down
// gracefully; both goroutines end before g.Wait returns. A nil endpoint
// serves nothing.
func (e *endpoint) serve(gctx context.Context, g *errgroup.Group) {
	if e == nil || e.ln == nil {
		return
	}
	logger := klog.FromContext(gctx)
	srv := &http.Server{
		Handler:           e.handler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return gctx },
	}
	ln := e.ln
	e.ln = nil // Serve owns it now, and closes it.
	g.Go(func() error {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve %s on %s: %w", e.what, e.addr, err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), serverShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			logger.Error(err, "Server did not shut down cleanly", "server", e.what, "address", e.addr)
		}
		return nil
	})
	logger.Info("Serving "+e.what, "address", e.addr)
}

// close releases the listener of an endpoint that was never served; safe on
// nil and more than once.
func (e *endpoint) close() {
	if e != nil && e.ln != nil {
		_ = e.ln.Close()
		e.ln = nil
	}
}
