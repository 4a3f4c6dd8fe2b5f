package env

import (
	"context"
	"fmt"
	"sync"

	"github.com/tessera-gpu/tessera/test/cluster"
)

// Stopping and starting the in-process components, one at a time, as a
// crash and a restart by its supervisor would: each comes back with the
// same configuration, address and on-disk state (the node agent's state
// directory, the kubelet's record of what it admitted), and nothing else
// of the environment is touched. The servers' equivalents are
// cluster.Member's KillServer and RestartServer.

// StopExtender stops the member's scheduler extender: kube-scheduler's
// calls to it fail until StartExtender.
func (m *Member) StopExtender() error {
	return stopIn(&m.mu, &m.extender, "extender of "+m.name)
}

// StartExtender starts the member's extender again on the port
// kube-scheduler's configuration names; it rebuilds its in-flight record
// from the pods' assignments, as after any restart.
func (m *Member) StartExtender(ctx context.Context) error {
	return startIn(ctx, &m.mu, &m.extender, "extender of "+m.name, func(ctx context.Context) (*component, error) {
		// Nothing held: the address is kube-scheduler's, listened on afresh.
		return m.env.startExtender(ctx, m, &cluster.HeldPorts{}, m.extenderAddr)
	})
}

// StopAgent stops the node agent (device plugin, GPU tracker, node
// publisher): the kubelet loses the plugin's ListAndWatch stream.
func (n *Node) StopAgent() error {
	return stopIn(&n.mu, &n.agent, "node agent of "+n.name)
}

// StartAgent starts the node agent again with its configuration and state
// directory: it registers with the kubelet again and reloads the
// allocations it had recorded.
func (n *Node) StartAgent(ctx context.Context) error {
	return startIn(ctx, &n.mu, &n.agent, "node agent of "+n.name, func(ctx context.Context) (*component, error) {
		agent, _, err := n.member.env.startAgent(ctx, n.member, n.name, n.cfg, n.lib)
		return agent, err
	})
}

// StopKubelet stops the node's kubelet with its pods running: it stops
// watching pods and serving the device-plugin registration and
// PodResources sockets. What it admitted is kept, as the kubelet keeps its
// device checkpoint and finds its running pods again.
func (n *Node) StopKubelet() error {
	err := stopIn(&n.mu, &n.pods, "kubelet of "+n.name)
	n.devices.Stop()
	return err
}

// StartKubelet starts the kubelet again: a fresh kubelet.sock (the device
// plugin must register again, as with a real kubelet) and PodResources
// socket, and the pod loop, which first releases the devices of pods
// deleted while it was down.
func (n *Node) StartKubelet(ctx context.Context) error {
	return startIn(ctx, &n.mu, &n.pods, "kubelet of "+n.name, func(ctx context.Context) (*component, error) {
		if err := n.devices.Restart(ctx); err != nil {
			return nil, err
		}
		return n.member.env.runComponent(ctx, n.name+"-kubelet", n.kubelet.run)
	})
}

// stopIn stops the component in *slot (guarded by mu) and empties the slot.
func stopIn(mu *sync.Mutex, slot **component, what string) error {
	mu.Lock()
	c := *slot
	*slot = nil
	mu.Unlock()
	if c == nil {
		return fmt.Errorf("stop %s: it is not running", what)
	}
	return c.stop()
}

// startIn starts a component into the empty *slot (guarded by mu).
func startIn(ctx context.Context, mu *sync.Mutex, slot **component, what string, start func(context.Context) (*component, error)) error {
	mu.Lock()
	running := *slot != nil
	mu.Unlock()
	if running {
		return fmt.Errorf("start %s: it is running", what)
	}
	c, err := start(ctx)
	if err != nil {
		return fmt.Errorf("start %s: %w", what, err)
	}
	mu.Lock()
	*slot = c
	mu.Unlock()
	return nil
}
