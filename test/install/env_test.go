package install_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/install"
)

// TestMain gives controller-runtime a logger before anything uses it:
// Karmada's binding webhook (test/cluster, in this process) logs through
// controller-runtime, which otherwise prints a stack trace into the test's
// output, where the install report goes. Its answers reach the API server.
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// startTimeout bounds each server's start and each wait of the test.
const startTimeout = 3 * time.Minute

// customizedModelingOff: without it Karmada's general estimator answers 0
// for any replica asking for an extended resource (see test/e2e/env).
const customizedModelingOff = "--feature-gates=CustomizedClusterResourceModeling=false"

// servers are the real API servers the chart is installed on.
type servers struct {
	member  *cluster.Member
	karmada *cluster.Karmada
	paths   cluster.Paths
	bins    string // the Tessera binaries, built from ./cmd
}

// startServers starts a member (kube-apiserver and kube-controller-manager,
// no kube-scheduler: the chart brings its own) and a Karmada control plane
// at once, and builds the Tessera binaries meanwhile.
func startServers(ctx context.Context, t *testing.T, dir string) *servers {
	t.Helper()
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &servers{paths: paths, bins: filepath.Join(dir, "bin")}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		s.member, err = cluster.StartMember(gctx, cluster.Options{Name: memberName, Paths: paths,
			ControllerManager: true, Dir: dir, StartTimeout: startTimeout, T: quiet{t}})
		return err
	})
	g.Go(func() error {
		var err error
		s.karmada, err = cluster.StartKarmada(gctx, cluster.KarmadaOptions{Paths: paths, Dir: dir, StartTimeout: startTimeout, T: quiet{t},
			ControllerManagerArgs: []string{customizedModelingOff}, SchedulerArgs: []string{customizedModelingOff}})
		return err
	})
	g.Go(func() error { return buildTessera(gctx, s.bins) })
	err = g.Wait()
	t.Cleanup(func() {
		if s.karmada != nil {
			s.karmada.Stop()
		}
		if s.member != nil {
			s.member.Stop()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// quiet keeps the servers' progress lines out of the test's output, which
// lists what was installed and who ran: a server that fails to start says
// so in the error, with the end of its log, and a failed test keeps every
// log.
type quiet struct{ *testing.T }

func (quiet) Logf(string, ...any) {}

// buildTessera builds every Tessera command into dir, as the images hold them.
func buildTessera(ctx context.Context, dir string) error {
	root, err := cluster.RepoFile(".")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "kubernetes_protomessage_one_more_release", "-o", dir+"/",
		"./cmd/tessera", "./cmd/tessera-node-agent", "./cmd/tessera-scheduler-extender", "./cmd/tessera-estimator")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the Tessera commands: %w\n%s", err, out)
	}
	return nil
}

// binaries maps the manifests' commands to the binaries that run them.
func (s *servers) binaries() map[string]string {
	m := map[string]string{"kube-scheduler": filepath.Join(s.paths.Kubernetes, "kube-scheduler")}
	for _, b := range []string{"tessera", "tessera-node-agent", "tessera-scheduler-extender", "tessera-estimator"} {
		m[b] = filepath.Join(s.bins, b)
	}
	return m
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loopback is a free 127.0.0.1 address.
func loopback(t *testing.T) string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

// summary counts the actions of one apply.
func summary(applied []install.Applied) map[install.Action]int {
	n := map[install.Action]int{}
	for _, a := range applied {
		n[a.Action]++
	}
	return n
}

// describe lists the applied objects with what happened to each.
func describe(applied []install.Applied) string {
	parts := make([]string, 0, len(applied))
	for _, a := range applied {
		parts = append(parts, a.Key+" "+string(a.Action))
	}
	return strings.Join(parts, "\n    ")
}

// mkdirShort makes the test's directory under /tmp (t.TempDir's path is
// too long for unix sockets), removed unless the test failed.
func mkdirShort(t *testing.T) (string, error) {
	dir, err := os.MkdirTemp("", "ti-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s (servers' logs, components' logs and files)", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir, nil
}
