// Package env builds Tessera's whole multi-cluster environment on loopback
// for the end-to-end tests and `make demo`:
//
//   - a Karmada control plane (etcd, karmada-apiserver, karmada-aggregated-apiserver,
//     karmada-controller-manager, karmada-scheduler) and member clusters (etcd,
//     kube-apiserver, kube-controller-manager, kube-scheduler configured with
//     Tessera's extender), all real servers from package test/cluster;
//   - in this process, per member: Tessera's scheduler extender and Tessera's
//     estimator, behind the member's karmada-scheduler-estimator-<member>
//     Service (an ExternalName to 127.0.0.1) unless the stock estimator is
//     asked for;
//   - per node: the real node agent on go-nvml mock GPUs (GPU tracker, device
//     plugin, node publisher) and a simulated kubelet that admits the node's
//     pods through the device plugin and reports them Running.
//
// Each Tessera component runs as the chart's ServiceAccount for it, never
// as admin, and a request the API server refuses it fails the test at Stop
// (identity.go, refusals.go).
//
// Every server listens on 127.0.0.1 or on a unix socket in the environment's
// directory. Each in-process component runs in its own goroutines with its
// own context and writes its log to its own file there; Stop keeps the
// directory (every component's log) when starting failed, the test failed,
// or KeepDir is set.
package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// EstimatorMode says which replica estimates karmada-scheduler uses.
type EstimatorMode string

const (
	// EstimatorTessera runs karmada-scheduler with --enable-scheduler-estimator
	// and every member's estimator Service pointing at Tessera's estimator:
	// Karmada takes the minimum of its general estimate and Tessera's.
	EstimatorTessera EstimatorMode = "tessera"
	// EstimatorStock runs karmada-scheduler with --enable-scheduler-estimator=false:
	// only Karmada's general estimator, which divides each cluster's free
	// resource totals (its resource summary) by the replica's request.
	EstimatorStock EstimatorMode = "stock"
)

// customizedModelingOff turns off Karmada's default resource models. With
// them on, karmada-controller-manager grades clusters by cpu and memory
// only, and the general estimator answers 0 for any replica that asks for
// an extended resource, so no GPU workload would ever be scheduled.
const customizedModelingOff = "CustomizedClusterResourceModeling=false"

// featureGatesFlag is the one --feature-gates flag for Karmada's
// controller-manager and scheduler: customizedModelingOff and the extra
// gates, in one flag so that no later flag can drop an earlier gate.
func featureGatesFlag(extra []string) string {
	return "--feature-gates=" + strings.Join(append([]string{customizedModelingOff}, extra...), ",")
}

// maxSocketDir bounds the environment directory's length: unix socket
// paths (the device plugins' and fake kubelets') must fit in 108 bytes.
const maxSocketDir = 60

// Options say what Start builds.
type Options struct {
	// Members are the member clusters, joined to Karmada in this order.
	Members []MemberSpec
	// Estimator is EstimatorTessera (the default) or EstimatorStock.
	Estimator EstimatorMode
	// Config is Tessera's configuration shared by every component; the zero
	// value means config.Default(). Its node section is completed per node.
	Config *config.Config
	// Paths are the server binaries; Start calls cluster.Binaries for any
	// that are missing (a cold build takes about 7 minutes on two idle cores).
	Paths cluster.Paths
	// EstimatorTLS runs every Tessera estimator with mutual TLS (a serving
	// pair, and client certificates required and verified against a CA of
	// the environment's own) and karmada-scheduler with Karmada's estimator
	// client flags for that CA and a client pair; Tessera mode only.
	// karmada-scheduler has one client configuration for all estimators,
	// so they all serve TLS or none does.
	EstimatorTLS bool
	// KarmadaSchedulerArgs are extra flags for karmada-scheduler.
	KarmadaSchedulerArgs []string
	// KarmadaFeatureGates are extra feature gates ("Name=true") for both
	// karmada-controller-manager (its resource detector interprets
	// workloads) and karmada-scheduler, for example
	// MultiplePodTemplatesScheduling.
	KarmadaFeatureGates []string
	// Dir is where the environment's directory is created; os.TempDir() if empty.
	Dir string
	// KeepDir keeps the directory after Stop even when nothing failed.
	KeepDir bool
	// StartTimeout bounds each server's start and each wait of Start;
	// cluster.DefaultStartTimeout if zero.
	StartTimeout time.Duration
	// LogVerbosity is the klog verbosity of the in-process components' logs.
	LogVerbosity int
	// T receives the servers' progress lines and tells Stop whether the
	// test failed; may be nil.
	T cluster.TB
	// Progress receives the environment's own progress lines (a step and
	// how long it took); nil sends them to T, or to klog without T.
	Progress func(format string, args ...any)
}

// MemberSpec describes one member cluster.
type MemberSpec struct {
	// Name is the Karmada Cluster name and prefixes everything of the member.
	Name string
	// Nodes are the member's GPU nodes.
	Nodes []NodeSpec
}

// NodeSpec describes one node: its go-nvml mock GPUs.
type NodeSpec struct {
	// Name is the Node's name; "<member>-node-<i>" if empty. It also seeds
	// the mock GPU UUIDs, so distinct names give distinct GPUs.
	Name string
	GPUs []config.MockGPU
}

// Env is a running environment.
type Env struct {
	opts     Options
	cfg      config.Config
	dir      string
	logs     *logFiles
	karmada  *cluster.Karmada
	members  []*Member
	tls      *cluster.EstimatorTLS // nil: the estimators serve plain gRPC
	ids      *identities           // the components' ServiceAccounts (identity.go)
	logf     func(format string, args ...any)
	started  time.Time
	failed   bool // starting failed: keep everything
	stopOnce sync.Once
	stopErr  error // what did not stop cleanly; set by Stop

	dashboardKubeconfig string // the fleet CLI's and page's (identity.go)
}

// Start builds the environment and returns once every member is joined to
// Karmada and Karmada's view of each member shows all of its GPUs. On error
// nothing is left running and the directory is kept.
func Start(ctx context.Context, opts Options) (*Env, error) {
	e, err := newEnv(opts)
	if err != nil {
		return nil, err
	}
	if err := e.start(ctx); err != nil {
		e.failed = true
		e.Stop()
		return nil, fmt.Errorf("start environment (logs in %s): %w", e.dir, err)
	}
	e.logf("environment ready after %s: Karmada at %s, members %s, logs in %s",
		e.Since(), e.karmada.Server(), strings.Join(e.memberNames(), ", "), e.dir)
	return e, nil
}

// newEnv checks the options and creates the directory.
func newEnv(opts Options) (*Env, error) {
	if opts.Estimator == "" {
		opts.Estimator = EstimatorTessera
	}
	if opts.Estimator != EstimatorTessera && opts.Estimator != EstimatorStock {
		return nil, fmt.Errorf("environment: estimator mode %q is neither %q nor %q", opts.Estimator, EstimatorTessera, EstimatorStock)
	}
	if opts.EstimatorTLS && opts.Estimator != EstimatorTessera {
		return nil, fmt.Errorf("environment: estimator TLS needs estimator mode %q; in %q mode karmada-scheduler dials no estimator", EstimatorTessera, opts.Estimator)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = cluster.DefaultStartTimeout
	}
	if err := checkMembers(opts.Members); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	cfg := config.Default()
	if opts.Config != nil {
		cfg = *opts.Config
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("environment: Tessera configuration: %w", err)
	}
	dir, err := os.MkdirTemp(opts.Dir, "tessera-e2e-")
	if err != nil {
		return nil, fmt.Errorf("environment: create directory: %w", err)
	}
	if len(dir) > maxSocketDir {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("environment: directory %s is longer than %d bytes; unix socket paths under it would not fit (set Options.Dir to a short path)", dir, maxSocketDir)
	}
	e := &Env{opts: opts, cfg: cfg, dir: dir, started: time.Now()}
	e.logs = &logFiles{dir: filepath.Join(dir, "in-process"), verbosity: opts.LogVerbosity}
	e.logf = opts.Progress
	if e.logf == nil {
		e.logf = logfFor(opts.T)
	}
	e.ids = newIdentities(filepath.Join(dir, "identities"), e.logf)
	return e, nil
}

// checkMembers rejects specs that cannot be built: no member, duplicate or
// empty names, a member without GPU nodes.
func checkMembers(members []MemberSpec) error {
	if len(members) == 0 {
		return errors.New("no member clusters")
	}
	seen := map[string]bool{}
	nodes := map[string]bool{}
	for _, m := range members {
		switch {
		case m.Name == "":
			return errors.New("a member has no name")
		case seen[m.Name]:
			return fmt.Errorf("member %q appears twice", m.Name)
		case len(m.Nodes) == 0:
			return fmt.Errorf("member %q has no nodes", m.Name)
		}
		seen[m.Name] = true
		for i := range m.Nodes {
			name := nodeName(m, i)
			if nodes[name] {
				return fmt.Errorf("node %q appears twice", name)
			}
			nodes[name] = true
			if len(m.Nodes[i].GPUs) == 0 {
				return fmt.Errorf("node %q of member %q has no GPUs", name, m.Name)
			}
		}
	}
	return nil
}

// nodeName is the i-th node's name in member m.
func nodeName(m MemberSpec, i int) string {
	if n := m.Nodes[i].Name; n != "" {
		return n
	}
	return fmt.Sprintf("%s-node-%d", m.Name, i+1)
}

func (e *Env) start(ctx context.Context) error {
	if err := e.ensureBinaries(ctx); err != nil {
		return err
	}
	if err := e.prepareEstimatorTLS(); err != nil {
		return err
	}
	e.members = make([]*Member, len(e.opts.Members))
	// Members and Karmada start at once: most of a start is waiting for
	// servers to become ready, which overlaps well even on two cores.
	g, gctx := errgroup.WithContext(ctx)
	for i, spec := range e.opts.Members {
		g.Go(func() error {
			m, err := e.startMember(gctx, spec)
			e.members[i] = m // kept even on error: Stop stops what it started
			return err
		})
	}
	g.Go(func() error {
		var err error
		e.karmada, err = e.startKarmada(gctx)
		return err
	})
	if err := g.Wait(); err != nil {
		return err
	}
	if err := e.installDashboard(ctx); err != nil {
		return err
	}
	for _, m := range e.members {
		if err := e.join(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// ensureBinaries builds (or finds) the servers once for all control planes.
func (e *Env) ensureBinaries(ctx context.Context) error {
	p := e.opts.Paths
	if p.Etcd != "" && p.Kubernetes != "" && p.Karmada != "" && p.KarmadaCRDs != "" {
		return nil
	}
	start := time.Now()
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		return err
	}
	e.opts.Paths = paths
	e.logf("servers ready after %s", time.Since(start).Round(time.Millisecond))
	return nil
}

// startKarmada starts Karmada's control plane in the estimator mode asked for.
func (e *Env) startKarmada(ctx context.Context) (*cluster.Karmada, error) {
	gates := featureGatesFlag(e.opts.KarmadaFeatureGates)
	schedulerArgs := []string{gates}
	if e.opts.Estimator == EstimatorStock {
		// Appended after StartKarmada's own --enable-scheduler-estimator=true: the later flag wins.
		schedulerArgs = append(schedulerArgs, "--enable-scheduler-estimator=false")
	}
	if e.tls != nil {
		schedulerArgs = append(schedulerArgs, e.tls.SchedulerArgs()...)
	}
	schedulerArgs = append(schedulerArgs, e.opts.KarmadaSchedulerArgs...)
	start := time.Now()
	k, err := cluster.StartKarmada(ctx, cluster.KarmadaOptions{
		Paths:                 e.opts.Paths,
		ControllerManagerArgs: []string{gates},
		SchedulerArgs:         schedulerArgs,
		Dir:                   e.dir,
		KeepDir:               e.opts.KeepDir,
		StartTimeout:          e.opts.StartTimeout,
		T:                     e.opts.T,
	})
	if err != nil {
		return nil, err
	}
	e.logf("karmada: control plane ready after %s (estimator mode %s, estimator TLS %t)", time.Since(start).Round(time.Millisecond), e.opts.Estimator, e.tls != nil)
	return k, nil
}

// Stop stops the in-process components (estimators, extenders, node
// agents, kubelets), then the servers, and removes the directory unless it
// is to be kept; then it says where the logs are. It may be called more
// than once.
func (e *Env) Stop() {
	e.stopOnce.Do(func() {
		var errs []error
		for _, m := range slices.Backward(e.members) {
			if m != nil {
				errs = append(errs, m.stopComponents()...)
			}
		}
		e.ids.stop()
		if err := e.checkRefusals(); err != nil {
			errs = append(errs, err)
			failTest(e.opts.T, err)
		}
		for _, err := range errs {
			e.logf("environment: %v", err)
		}
		e.stopErr = errors.Join(errs...)
		// The servers stop after everything that talks to them, so that
		// no component logs a storm of connection errors on its way out.
		if e.karmada != nil {
			e.karmada.Stop()
		}
		for _, m := range e.members {
			if m != nil && m.cluster != nil {
				m.cluster.Stop()
			}
		}
		e.logs.close()
		if e.keep() || len(errs) > 0 {
			e.logf("environment: kept %s (servers: */*.log; in-process components: in-process/*.log)", e.dir)
			return
		}
		if err := os.RemoveAll(e.dir); err != nil {
			e.logf("environment: remove %s: %v", e.dir, err)
		}
	})
}

// StopErr says which in-process components failed or did not stop in
// time during Stop, and which were forbidden a request; nil after a clean
// teardown (and before Stop).
func (e *Env) StopErr() error { return e.stopErr }

func (e *Env) keep() bool {
	return e.failed || e.opts.KeepDir || (e.opts.T != nil && e.opts.T.Failed())
}

// Karmada is the Karmada control plane.
func (e *Env) Karmada() *cluster.Karmada { return e.karmada }

// Members are the member clusters in the order of Options.Members.
func (e *Env) Members() []*Member { return slices.Clone(e.members) }

// Member returns the member called name, or nil.
func (e *Env) Member(name string) *Member {
	for _, m := range e.members {
		if m != nil && m.name == name {
			return m
		}
	}
	return nil
}

// Config is the Tessera configuration every component runs with.
func (e *Env) Config() config.Config { return e.cfg }

// EstimatorMode is the mode karmada-scheduler runs in.
func (e *Env) EstimatorMode() EstimatorMode { return e.opts.Estimator }

// Dir is the environment's directory: one directory per control plane
// (its servers' logs) and in-process/ (every in-process component's log).
func (e *Env) Dir() string { return e.dir }

// Since is how long ago Start began, rounded for humans.
func (e *Env) Since() time.Duration { return time.Since(e.started).Round(100 * time.Millisecond) }

func (e *Env) memberNames() []string {
	names := make([]string, 0, len(e.members))
	for _, m := range e.members {
		names = append(names, m.name)
	}
	return names
}

// failTest fails t when it can (a *testing.T can; cluster.TB need not).
func failTest(t cluster.TB, err error) {
	if f, ok := t.(interface{ Errorf(string, ...any) }); ok {
		f.Errorf("%v", err)
	}
}

// logfFor logs progress to the test when there is one, else to klog.
func logfFor(t cluster.TB) func(format string, args ...any) {
	if t != nil {
		return func(format string, args ...any) { t.Helper(); t.Logf(format, args...) }
	}
	return func(format string, args ...any) { klog.InfoS(fmt.Sprintf(format, args...)) }
}
