package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// server is one life of the plugin's gRPC server on its socket. A kubelet
// restart wipes the device-plugin directory, so the plugin then starts a new
// one (as NVIDIA's plugin does) rather than serving an unlinked socket.
type server struct {
	grpc *grpc.Server
	// stop is closed when this server stops, ending its ListAndWatch
	// streams so that a graceful stop does not wait on them forever.
	stop chan struct{}
	// served is closed when Serve has returned.
	served chan struct{}
	// socket identifies the socket file this server listens on, so that a
	// socket removed (or replaced) behind its back is noticed.
	socket os.FileInfo
}

// startServer listens on the plugin socket, replacing any stale one.
func (p *Plugin) startServer() (*server, error) {
	path := p.socketPath()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("remove stale plugin socket %s: %w", path, err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on plugin socket %s: %w", path, err)
	}
	// A kubelet starting now may already have removed the socket again:
	// then socket stays nil, and the next reconcile starts a new server.
	info, err := os.Stat(path)
	if err != nil {
		p.logger.Info("Plugin socket vanished right after it was created", "socket", path, "err", err)
	}
	s := &server{grpc: grpc.NewServer(), stop: make(chan struct{}), served: make(chan struct{}), socket: info}
	pluginapi.RegisterDevicePluginServer(s.grpc, &service{plugin: p, stop: s.stop})
	go func() {
		defer close(s.served)
		if err := s.grpc.Serve(lis); err != nil {
			p.logger.Error(err, "Plugin gRPC server stopped", "socket", path)
		}
	}()
	p.logger.Info("Serving device plugin", "socket", path)
	return s, nil
}

// stopServer ends the streams, stops gracefully (forcefully after a
// timeout, since a kubelet that vanished may never close its streams) and
// removes the socket if it is still this server's.
func (p *Plugin) stopServer(s *server) {
	close(s.stop)
	graceful := make(chan struct{})
	go func() {
		defer close(graceful)
		s.grpc.GracefulStop()
	}()
	t := time.NewTimer(p.tune.stopTimeout)
	defer t.Stop()
	select {
	case <-graceful:
	case <-t.C:
		p.logger.Info("Graceful stop timed out; stopping the plugin server forcefully")
		s.grpc.Stop()
		<-graceful
	}
	<-s.served
	if info, err := os.Stat(p.socketPath()); err == nil && sameSocket(info, s.socket) {
		if err := os.Remove(p.socketPath()); err != nil {
			p.logger.Error(err, "Removing plugin socket", "socket", p.socketPath())
		}
	}
}

// sameSocket reports whether two stats are of the same socket file. The
// modification time guards against a new socket that reuses the inode of
// one just removed (tmpfs and ext4 reuse inodes at once, and keep
// nanosecond times). A nil stat is never the same.
func sameSocket(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime())
}

// serveAndRegister keeps the server up and registered until ctx is done.
// It reconciles on filesystem events in the device-plugin directory, on a
// poll tick (in case an event was missed) and on registration retries.
func (p *Plugin) serveAndRegister(ctx context.Context) error {
	// Watch first: a kubelet that starts between the first checks and the
	// watch would otherwise go unnoticed until the next poll.
	events, stopWatch := p.watchPluginDir(ctx)
	defer stopWatch()
	srv, err := p.startServer()
	if err != nil {
		return err
	}
	defer func() {
		if srv != nil {
			p.stopServer(srv)
		}
	}()
	poll := time.NewTicker(p.tune.pollInterval)
	defer poll.Stop()
	retry := time.NewTimer(0)
	defer retry.Stop()
	backoff := 200 * time.Millisecond

	// registeredWith is the kubelet socket the current server registered
	// with; a different file at that path means the kubelet restarted.
	// Every change is published for Registered.
	var registeredWith os.FileInfo
	setRegistered := func(kubelet os.FileInfo) {
		registeredWith = kubelet
		if kubelet == nil || srv == nil {
			p.registered.Store(nil)
			return
		}
		p.registered.Store(&registration{kubelet: kubelet, plugin: srv.socket})
	}
	defer setRegistered(nil)
	retryLater := func(what string, err error) {
		p.logger.Error(err, what+"; will retry", "retryIn", backoff)
		retry.Reset(backoff)
		backoff = min(backoff*2, p.tune.registerBackoffMax)
	}
	// restart serves a fresh socket; a failure (the directory gone while
	// the kubelet restarts, say) is retried rather than fatal.
	restart := func(reason string) bool {
		p.logger.Info(reason+"; restarting the plugin server", "socket", p.socketPath())
		if srv != nil {
			p.stopServer(srv)
			srv = nil
		}
		setRegistered(nil)
		started, err := p.startServer()
		if err != nil {
			retryLater("Starting the plugin server", err)
			return false
		}
		srv = started
		return true
	}
	reconcile := func() {
		if srv == nil {
			if !restart("No plugin server") {
				return
			}
		} else if info, err := os.Stat(p.socketPath()); err != nil || !sameSocket(info, srv.socket) {
			if !restart("Plugin socket is gone") {
				return
			}
		}
		kubelet, err := os.Stat(p.kubeletSocketPath())
		if err != nil {
			if registeredWith != nil {
				p.logger.Info("Kubelet socket is gone; waiting for the kubelet", "socket", p.kubeletSocketPath())
			}
			setRegistered(nil)
			return
		}
		if registeredWith != nil && sameSocket(kubelet, registeredWith) {
			return
		}
		// The kubelet restarted: it removed every socket in the directory
		// when it started, so serve afresh before registering.
		if registeredWith != nil && !restart("Kubelet restarted") {
			return
		}
		if err := p.register(ctx); err != nil {
			retryLater("Registering with the kubelet", err)
			return
		}
		setRegistered(kubelet)
		backoff = 200 * time.Millisecond
		p.logger.Info("Registered with the kubelet", "resource", p.opts.ResourceName)
	}

	for {
		select {
		case <-ctx.Done():
			p.logger.Info("Device plugin stopping")
			return nil
		case <-events:
		case <-poll.C:
		case <-retry.C:
		}
		reconcile()
	}
}
