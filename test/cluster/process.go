package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one server of a test cluster, running in its own process group
// with its stdout and stderr in a log file.
type process struct {
	name    string
	logPath string
	bin     string
	args    []string // the command line, kept so that a restart repeats it
	// probeURL and probeClient say how the server was found ready; set by
	// controlPlane.run once it was, and used again by a restart.
	probeURL    string
	probeClient *http.Client
	pid         int
	done        chan struct{} // closed once the process has exited and been reaped
	waitErr     error         // why it exited; read only after done is closed
}

// startProcess starts bin with args, its output appended to logPath.
//
// The child gets its own process group (so that stop reaches anything it
// forks) and SIGKILL as its parent-death signal (so that it dies with the
// test binary even when the test binary is killed without running cleanups,
// for example by `go test -timeout`). Linux sends that signal when the
// *thread* that forked the child exits, and Go may retire idle threads, so
// the child is started from a goroutine locked to its thread that stays
// there, waiting for the child, until the child exits.
func startProcess(name, logPath, bin string, args []string) (*process, error) {
	return startProcessEnv(name, logPath, bin, args, nil)
}

// startProcessEnv is startProcess with extra environment variables
// ("NAME=value") on top of the test's own.
func startProcessEnv(name, logPath, bin string, args, env []string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: open log: %w", name, err)
	}
	fmt.Fprintf(logFile, "# %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	p := &process{name: name, logPath: logPath, bin: bin, args: args, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	return p, nil
}

// exited says whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop asks the process group to end (SIGTERM), kills it (SIGKILL) if it
// has not after grace, and returns once the process is reaped and nothing
// is left in its group (a child it forked included).
func (p *process) stop(grace time.Duration) {
	if done, _ := p.exited(); !done {
		_ = syscall.Kill(-p.pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			<-p.done
		}
	}
	// The leader is gone; a child it forked may still be in its group.
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	// SIGKILL is delivered asynchronously: wait (briefly) until it took effect.
	deadline := time.Now().Add(5 * time.Second)
	for p.alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

// alive says whether any process of p's group is still running. Zombies do
// not count: a killed grandchild stays one until init reaps it.
func (p *process) alive() bool {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return syscall.Kill(-p.pid, 0) == nil
	}
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		if state, pgid, ok := parseProcStat(string(data)); ok && pgid == p.pid && state != "Z" && state != "X" {
			return true
		}
	}
	return false
}

// parseProcStat reads the state and process group of /proc/PID/stat:
// "pid (comm) state ppid pgrp ...", where comm may hold spaces and parentheses.
func parseProcStat(stat string) (state string, pgid int, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", 0, false
	}
	fields := strings.Fields(stat[i+1:])
	if len(fields) < 3 {
		return "", 0, false
	}
	pgid, err := strconv.Atoi(fields[2])
	if err != nil {
		return "", 0, false
	}
	return fields[0], pgid, true
}

// logTail returns the last lines of the process's log, for error messages.
func (p *process) logTail() string {
	return fileTail(p.logPath, tailLines)
}

// fileTail returns the last n lines of a file, reading at most its last 64 KiB.
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const maxRead = 64 * 1024
	if info, err := f.Stat(); err == nil && info.Size() > maxRead {
		if _, err := f.Seek(info.Size()-maxRead, io.SeekStart); err != nil {
			return fmt.Sprintf("(cannot read %s: %v)", path, err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// errPortInUse marks a start that failed because a port chosen as free was
// taken by someone else before the server bound it; the caller may retry
// with other ports.
var errPortInUse = errors.New("a chosen port was taken before the server bound it")

// readinessError says which component did not become ready and shows the
// end of its log.
func readinessError(p *process, url string, waited time.Duration, last error) error {
	reason := fmt.Sprintf("not ready at %s after %s (last probe: %v)", url, waited.Round(time.Millisecond), last)
	if done, waitErr := p.exited(); done {
		reason = fmt.Sprintf("exited before it was ready (%v)", waitErr)
	}
	tail := p.logTail()
	err := fmt.Errorf("%s %s; last lines of %s:\n%s", p.name, reason, p.logPath, tail)
	if strings.Contains(tail, "address already in use") {
		return fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return err
}

// readinessPoll is how often a starting server is probed.
const readinessPoll = 200 * time.Millisecond

// waitReady polls url with client until it answers 200, the process exits,
// timeout passes or ctx ends.
func waitReady(ctx context.Context, p *process, client *http.Client, url string, timeout time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ticker := time.NewTicker(readinessPoll)
	defer ticker.Stop()
	last := errors.New("not probed yet")
	for {
		if done, _ := p.exited(); done {
			return readinessError(p, url, time.Since(start), last)
		}
		if last = probe(ctx, client, url); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return readinessError(p, url, time.Since(start), last)
		case <-p.done:
		case <-ticker.C:
		}
	}
}

// probe makes one GET and wants 200.
func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
}

// probeClient is an HTTP client for health probes that trusts caPEM and,
// when given, presents a client certificate (the components' secure ports
// authenticate callers against the cluster CA). Without caPEM it speaks
// plain HTTP (etcd's loopback client port).
func probeClient(caPEM []byte, clientCert *keyPair) (*http.Client, error) {
	transport := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	if caPEM != nil {
		tlsConfig, err := tlsClientConfig(caPEM, clientCert)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = tlsConfig
	}
	return &http.Client{Transport: transport, Timeout: 5 * time.Second}, nil
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago. All listeners are open at once so the ports differ; another
// process may still take one before our server binds it (see errPortInUse).
func freePorts(n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tlsClientConfig trusts caPEM and optionally presents clientCert.
func tlsClientConfig(caPEM []byte, clientCert *keyPair) (*tls.Config, error) {
	pool, err := certPool(caPEM)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if clientCert != nil {
		pair, err := tls.X509KeyPair(clientCert.certPEM, clientCert.keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
