package cluster

import (
	"context"
	"fmt"
	"slices"
	"syscall"
	"time"
)

// Server names, as KillServer and RestartServer take them (and as each
// server's log file is called).
const (
	ServerEtcd                  = "etcd"
	ServerKubeAPIServer         = "kube-apiserver"
	ServerKubeControllerManager = "kube-controller-manager"
	ServerKubeScheduler         = "kube-scheduler"
	ServerKarmadaAPIServer      = "karmada-apiserver"
	ServerKarmadaScheduler      = "karmada-scheduler"
)

// KillServer kills one server of the member at once (SIGKILL to its process
// group), as a crash or an OOM kill would, and returns once nothing of it
// runs. Its data directory and ports are left as they are, for
// RestartServer.
func (m *Member) KillServer(name string) error { return m.cp.kill(name) }

// RestartServer starts a server killed by KillServer again with the very
// same command line: the same ports (so every client reconnects to the
// address it knows) and, for etcd, the same data directory (so nothing
// written before the kill is lost). It returns once the server answers its
// readiness probe.
func (m *Member) RestartServer(ctx context.Context, name string) error {
	return m.cp.restart(ctx, name)
}

// KillServer is Member.KillServer for Karmada's control plane.
func (k *Karmada) KillServer(name string) error { return k.cp.kill(name) }

// RestartServer is Member.RestartServer for Karmada's control plane.
func (k *Karmada) RestartServer(ctx context.Context, name string) error {
	return k.cp.restart(ctx, name)
}

// current returns the named server's current process and its index (a
// failed start's process comes before the one that succeeded).
func (cp *controlPlane) current(name string) (int, *process, error) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for i, p := range slices.Backward(cp.processes) {
		if p.name == name {
			return i, p, nil
		}
	}
	return 0, nil, fmt.Errorf("%s has no server called %q", cp.name, name)
}

func (cp *controlPlane) kill(name string) error {
	_, p, err := cp.current(name)
	if err != nil {
		return fmt.Errorf("kill server: %w", err)
	}
	if done, _ := p.exited(); done {
		return fmt.Errorf("kill %s of %s: it is not running", name, cp.name)
	}
	// A crash gives no warning: SIGKILL, not stop's SIGTERM first. stop
	// then waits until the whole group is gone.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.stop(stopGrace)
	cp.logf("%s: killed %s (pid %d)", cp.name, name, p.pid)
	return nil
}

func (cp *controlPlane) restart(ctx context.Context, name string) error {
	i, old, err := cp.current(name)
	if err != nil {
		return fmt.Errorf("restart server: %w", err)
	}
	if done, _ := old.exited(); !done {
		return fmt.Errorf("restart %s of %s: it is still running (pid %d)", name, cp.name, old.pid)
	}
	start := time.Now()
	p, err := startProcess(name, old.logPath, old.bin, old.args)
	if err != nil {
		return fmt.Errorf("restart %s of %s: %w", name, cp.name, err)
	}
	p.probeURL, p.probeClient = old.probeURL, old.probeClient
	cp.mu.Lock()
	cp.processes[i] = p
	cp.mu.Unlock()
	if err := waitReady(ctx, p, p.probeClient, p.probeURL, cp.startTimeout); err != nil {
		// Its port is its identity: another process that took it meanwhile
		// cannot be worked around by choosing another one.
		p.stop(stopGrace)
		return fmt.Errorf("restart %s of %s on its old ports: %w", name, cp.name, err)
	}
	cp.logf("%s: restarted %s, ready at %s after %s", cp.name, name, p.probeURL, time.Since(start).Round(time.Millisecond))
	return nil
}
