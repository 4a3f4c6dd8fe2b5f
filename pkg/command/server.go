package command

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"k8s.io/klog/v2"
)

// Server is one of a daemon's HTTP servers.
type Server struct {
	Name, Addr string
	Handler    http.Handler
	// TLS, when set, serves HTTPS.
	TLS *tls.Config
	// Listen, when set, replaces net.ListenConfig.Listen. A program that
	// embeds the daemon (the e2e environment) hands over a port it bound
	// before it told a peer (kube-scheduler, the API server) to call it:
	// a port found free, closed and bound again later can be taken by
	// another server in between.
	Listen ListenFunc

	srv   *http.Server
	bound string // the address listened on, with the port chosen for ":0"
}

// ListenFunc listens on address, like net.ListenConfig.Listen.
type ListenFunc func(ctx context.Context, network, address string) (net.Listener, error)

// Start listens synchronously (so that a taken port is an error of the
// caller) and serves in the background; a serving error is sent to errc
// without blocking. Calls do not end with ctx: Shutdown lets them finish
// (a bind cut between its annotation patch and its Binding only leaves
// work for the rollback).
func (s *Server) Start(ctx context.Context, errc chan<- error) error {
	listen := s.Listen
	if listen == nil {
		listen = (&net.ListenConfig{}).Listen
	}
	ln, err := listen(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen for %s on %s: %w", s.Name, s.Addr, err)
	}
	s.bound = ln.Addr().String()
	if s.TLS != nil {
		ln = tls.NewListener(ln, s.TLS)
	}
	base := context.WithoutCancel(ctx)
	s.srv = &http.Server{Handler: s.Handler, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			select {
			case errc <- fmt.Errorf("serve %s on %s: %w", s.Name, s.Addr, err):
			default:
			}
		}
	}()
	return nil
}

// Shutdown stops the servers, letting in-flight calls finish within
// timeout, then closing their connections. It may be called more than once.
func Shutdown(logger klog.Logger, timeout time.Duration, servers []*Server) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, s := range servers {
		if s.srv == nil {
			continue
		}
		if err := s.srv.Shutdown(ctx); err != nil {
			// Closing the connections cancels the calls still running.
			logger.Error(err, "Server did not shut down in time; closing its connections", "server", s.Name)
			_ = s.srv.Close()
		}
	}
}
