// Package cluster starts real Kubernetes and Karmada control planes for tests:
// etcd, kube-apiserver, kube-controller-manager, kube-scheduler and Karmada's
// servers, built from their Go modules by test/tools/build-servers.sh, every
// one of them listening on 127.0.0.1 on ports chosen at start. There is no
// kubelet: AddNode creates Node objects that look Ready to the scheduler.
//
// It is an ordinary package (not a _test package) so that the end-to-end
// tests and the scheduler extender's integration test can import it.
package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
)

// Component names a group of servers that build-servers.sh builds together.
type Component string

// The components build-servers.sh knows.
const (
	ComponentEtcd       Component = "etcd"
	ComponentKubernetes Component = "kubernetes" // kube-apiserver, kube-controller-manager, kube-scheduler
	ComponentKarmada    Component = "karmada"    // karmada-aggregated-apiserver, -controller-manager, -scheduler; Karmada's CRDs
)

// Paths holds the directories of the built server binaries. A field is empty
// when its component was not asked for.
type Paths struct {
	Etcd       string // holds etcd
	Kubernetes string // holds kube-apiserver, kube-controller-manager, kube-scheduler
	Karmada    string // holds karmada-aggregated-apiserver, karmada-controller-manager, karmada-scheduler
	// KarmadaCRDs holds Karmada's CustomResourceDefinitions, one YAML file each.
	KarmadaCRDs string
}

// buildHeartbeat is how often Binaries says it is still waiting: a cold
// build is silent for minutes inside `go build`, and a silent test looks hung.
const buildHeartbeat = 30 * time.Second

// Binaries runs test/tools/build-servers.sh for the given components (all of
// them when none is given) and returns where their binaries are. A cached
// build returns in well under a second; a cold one takes minutes (about 6 for
// Kubernetes, 3-4 per Karmada binary on two cores). The script's progress
// lines are copied to stderr as they come, with a heartbeat in between.
func Binaries(ctx context.Context, components ...Component) (Paths, error) {
	script, err := RepoFile("test/tools/build-servers.sh")
	if err != nil {
		return Paths{}, err
	}
	if len(components) == 0 {
		components = []Component{ComponentEtcd, ComponentKubernetes, ComponentKarmada}
	}
	args := make([]string, 0, len(components))
	for _, c := range components {
		switch c {
		case ComponentEtcd, ComponentKubernetes, ComponentKarmada:
			args = append(args, string(c))
		default:
			return Paths{}, fmt.Errorf("build servers: unknown component %q (want %q, %q or %q)", c, ComponentEtcd, ComponentKubernetes, ComponentKarmada)
		}
	}

	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	// The script runs `go build`; killing only bash would leave the compiler
	// running, so the whole group goes when ctx ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var stdout strings.Builder
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return Paths{}, fmt.Errorf("build servers: %w", err)
	}
	logger := klog.FromContext(ctx)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Paths{}, fmt.Errorf("build servers: start %s: %w", script, err)
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		copyLines(stderr, lines)
	}()
	var tail lineTail
	heartbeat := time.NewTicker(buildHeartbeat)
	defer heartbeat.Stop()
	for open := true; open; {
		select {
		case line, ok := <-lines:
			if !ok {
				open = false
				break
			}
			tail.add(line)
			fmt.Fprintln(os.Stderr, line)
		case <-heartbeat.C:
			logger.Info("Still building test servers", "components", args, "elapsed", time.Since(start).Round(time.Second))
		}
	}
	if err := cmd.Wait(); err != nil {
		return Paths{}, fmt.Errorf("build servers %v with %s: %w; last output:\n%s", args, script, err, tail.String())
	}
	paths, err := parseBuildOutput(stdout.String(), components)
	if err != nil {
		return Paths{}, fmt.Errorf("build servers %v: %w", args, err)
	}
	logger.V(1).Info("Test servers ready", "paths", paths, "elapsed", time.Since(start).Round(time.Millisecond))
	return paths, nil
}

// copyLines sends every line read from r to out.
func copyLines(r io.Reader, out chan<- string) {
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		out <- scanner.Text()
	}
}

// parseBuildOutput reads the script's KEY=DIR lines and keeps the
// directories of the components that were asked for. Unknown keys are
// ignored so that the script may grow.
func parseBuildOutput(out string, wanted []Component) (Paths, error) {
	dirs := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		key, value, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && key != "" {
			dirs[key] = value
		}
	}
	dir := func(key string) (string, error) {
		d := dirs[key]
		if d == "" || !filepath.IsAbs(d) {
			return "", fmt.Errorf("script output has no absolute %s=DIR line (got %q)", key, out)
		}
		return d, nil
	}
	var p Paths
	var err error
	for _, c := range wanted {
		switch c {
		case ComponentEtcd:
			p.Etcd, err = dir("ETCD_BIN")
		case ComponentKubernetes:
			p.Kubernetes, err = dir("KUBERNETES_BIN")
		case ComponentKarmada:
			if p.Karmada, err = dir("KARMADA_BIN"); err == nil {
				p.KarmadaCRDs, err = dir("KARMADA_CRDS")
			}
		}
		if err != nil {
			return Paths{}, err
		}
	}
	return p, nil
}

// RepoFile finds a file of the repository by its path from the repository
// root: relative to this source file when the test binary was built from the
// repository (the usual case), else above the working directory (a binary
// built with -trimpath).
func RepoFile(rel string) (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		candidate := filepath.Join(filepath.Dir(file), "..", "..", rel)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", rel, err)
	}
	for {
		candidate := filepath.Join(dir, rel)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find " + rel + ": not in the repository of the cluster package's source nor above the working directory")
		}
		dir = parent
	}
}

// lineTail keeps the last lines of a stream, for error messages.
type lineTail struct{ lines []string }

const tailLines = 40

func (t *lineTail) add(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

func (t *lineTail) String() string { return strings.Join(t.lines, "\n") }
