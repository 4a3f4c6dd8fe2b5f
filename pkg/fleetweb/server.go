// Package fleetweb serves the fleet page of `tessera dashboard`: a
// read-only web page, embedded in the binary, and the JSON it is drawn
// from. The JSON is pkg/fleet's own model (the same that `tessera fleet -o
// json` prints) and "what fits" is answered by (*fleet.State).Fit, so the
// page has no model of the fleet and no fit code of its own.
//
// The page is plain HTML, CSS and JavaScript with no build step, served
// from embedded files: it works where the cluster cannot reach the
// internet. Everything it shows that came from a cluster (GPU model names,
// pod names, error messages) may be controlled by an attacker, so the
// script only ever sets text (never HTML), and a strict
// Content-Security-Policy forbids inline and foreign scripts besides.
package fleetweb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// ContentSecurityPolicy is sent with every response. The page loads only
// its own script and style sheet, talks only to its own server, and may
// not be framed; 'unsafe-inline' is nowhere, so even a value that slipped
// into the HTML as markup could not run.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Options configure a Server.
type Options struct {
	// Config is Tessera's configuration: the resource names a fit request's
	// shape is written with.
	Config config.Config
	// Refresh is how often the page asks for new data; it should match how
	// often the Source reads the fleet.
	Refresh time.Duration
	// LoopbackHostsOnly rejects requests whose Host header is not a
	// loopback name (localhost, 127.0.0.1, ::1). Set it when listening on a
	// loopback address: it stops a web site the user visits from reading
	// the fleet through DNS rebinding (its own name resolving to 127.0.0.1).
	LoopbackHostsOnly bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server serves the page and its JSON.
type Server struct {
	src     Source
	opts    Options
	handler http.Handler

	// fitMu serialises fits: each costs CPU in proportion to the fleet, and
	// a read-only page shared by many users must not be made to burn it in
	// parallel.
	fitMu sync.Mutex
	cache fleetCache
}

// NewServer returns a server of src's state.
func NewServer(src Source, opts Options) (*Server, error) {
	if src == nil {
		return nil, errors.New("create fleet page server: no source of fleet state")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("create fleet page server: %w", err)
	}
	if opts.Refresh <= 0 {
		return nil, errors.New("create fleet page server: the refresh interval must be positive")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{src: src, opts: opts}
	assets, err := newAssets()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	// "GET" patterns also match HEAD; any other method on these paths is
	// answered 405 with an Allow header by the mux itself.
	mux.Handle("GET /{$}", assets.handler("index.html"))
	mux.Handle("GET /app.js", assets.handler("app.js"))
	mux.Handle("GET /app.css", assets.handler("app.css"))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /api/fleet", s.serveFleet)
	mux.HandleFunc("POST /api/fit", s.serveFit)
	s.handler = s.secure(mux)
	return s, nil
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// secure adds the security headers to every response, checks the Host
// header, and refuses methods other than GET, HEAD and (for fit) POST
// before anything else sees the request.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		if s.opts.LoopbackHostsOnly && !isLoopbackHost(r.Host) {
			klog.FromContext(r.Context()).V(2).Info("Refused a request for a non-loopback host name", "host", r.Host, "remote", r.RemoteAddr)
			writeError(w, http.StatusMisdirectedRequest, "this dashboard listens on a loopback address and answers only to localhost, 127.0.0.1 or [::1]")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodPost:
			next.ServeHTTP(w, r)
		default:
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "the fleet page is read-only")
		}
	})
}

// isLoopbackHost reports whether a Host header names this machine's
// loopback interface.
func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Serve serves on ln until ctx ends, then shuts down, letting requests in
// flight finish for a few seconds.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// A large fleet's JSON is megabytes; give slow links time.
		WriteTimeout:   2 * time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		// Requests keep the logger of ctx but are not cancelled with it:
		// Shutdown lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		done <- srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve the fleet page on %s: %w", ln.Addr(), err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("shut down the fleet page server: %w", err)
	}
	return nil
}
