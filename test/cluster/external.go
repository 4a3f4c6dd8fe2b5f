package cluster

import "time"

// Process is a program a test runs beside the servers (a Tessera component
// started from the chart's manifests): its own process group, killed with
// the test binary, its output appended to a log file.
type Process struct{ p *process }

// StartProcess starts bin with args and the extra environment env
// ("NAME=value"), its stdout and stderr appended to logPath.
func StartProcess(name, logPath, bin string, args, env []string) (*Process, error) {
	p, err := startProcessEnv(name, logPath, bin, args, env)
	if err != nil {
		return nil, err
	}
	return &Process{p: p}, nil
}

// Exited says whether the process has ended, and how.
func (p *Process) Exited() (bool, error) { return p.p.exited() }

// Stop sends SIGTERM, SIGKILL after grace, and returns once nothing of the
// process group is left.
func (p *Process) Stop(grace time.Duration) { p.p.stop(grace) }

// Pid is the process's id.
func (p *Process) Pid() int { return p.p.pid }

// LogPath is the file its output goes to.
func (p *Process) LogPath() string { return p.p.logPath }

// LogTail is the end of its log, for an error message.
func (p *Process) LogTail() string { return p.p.logTail() }

// CAData is the PEM of the member's cluster CA, for a kubeconfig of another
// identity than the admin's.
func (m *Member) CAData() []byte { return append([]byte(nil), m.cp.pki.ca.certPEM...) }

// CAData is the PEM of the Karmada API server's CA.
func (k *Karmada) CAData() []byte { return append([]byte(nil), k.cp.pki.ca.certPEM...) }
