package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
)

// HeldPorts are loopback listeners bound up front and handed to servers
// that run in this process (through their options' Listen, see
// command.Server.Listen). A port found free by listening on :0 and closing
// is only free until someone else binds it: the e2e environment starts
// several members' etcd, API servers and schedulers at once, and one of
// them took the extender's port between its choice and the extender's
// start ("bind: address already in use"). A held port stays bound from
// the moment it is named to a peer until its server serves it.
//
// Processes of their own (etcd, kube-apiserver) must bind their ports
// themselves; controlPlane.run retries those on another port instead.
type HeldPorts struct {
	mu     sync.Mutex
	byAddr map[string]net.Listener
}

// Hold binds a fresh loopback port and returns its address ("127.0.0.1:N").
func (h *HeldPorts) Hold() (string, error) {
	l, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return "", fmt.Errorf("hold a port on %s: %w", loopback, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byAddr == nil {
		h.byAddr = map[string]net.Listener{}
	}
	h.byAddr[l.Addr().String()] = l
	return l.Addr().String(), nil
}

// Listen hands over the held listener of address, once; any other address
// is listened on afresh. It is a command.ListenFunc.
func (h *HeldPorts) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	h.mu.Lock()
	l, ok := h.byAddr[address]
	delete(h.byAddr, address)
	h.mu.Unlock()
	if ok && network == "tcp" {
		return l, nil
	}
	if ok {
		_ = l.Close()
	}
	return (&net.ListenConfig{}).Listen(ctx, network, address)
}

// Close closes the listeners never handed over (a server that failed
// before it served); those handed over are closed by their servers.
func (h *HeldPorts) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for addr, l := range h.byAddr {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close held port %s: %w", addr, err))
		}
		delete(h.byAddr, addr)
	}
	return errors.Join(errs...)
}
