package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// Options configure the multi-cluster demo.
type Options struct {
	// Verbose also prints every server's start (address, time, log file).
	Verbose bool
	// Keep keeps every log after a successful run (they are always kept
	// after a failure).
	Keep bool
	// Stock also runs the scenario against stock Karmada, for comparison.
	Stock bool
	// StepTimeout bounds each wait of the scenario once the servers run.
	StepTimeout time.Duration
	// Serve, when set, keeps the Tessera environment running after its
	// report and serves the fleet page on this address until Ctrl-C.
	Serve string
}

// Run builds the servers, then runs the headline scenario with Tessera's
// estimator and (with Options.Stock) again with Karmada's stock estimate,
// each in an environment of its own that is torn down after its report.
func Run(ctx context.Context, out io.Writer, opts Options) error {
	if opts.StepTimeout <= 0 {
		opts.StepTimeout = 4 * time.Minute
	}
	p := newProgress(out)
	fmt.Fprintln(out, "Tessera demo: GPU sharing across clusters, with real Karmada and Kubernetes servers on 127.0.0.1.")
	fmt.Fprintf(out, "Member %s has 8 GPUs each with only %d GiB free; member %s has 2 empty 80 GiB GPUs.\n",
		env.BusyMember, env.BusyFreeMiB/1024, env.IdleMember)
	fmt.Fprintf(out, "A Deployment of 4 replicas x 1 vGPU x %d GiB is divided between them by available replicas.\n\n", env.HeadlineMemoryMiB/1024)

	var paths cluster.Paths
	err := p.run(ctx, "Build the real servers from Go modules", func(ctx context.Context) error {
		p.line("etcd, kube-apiserver, kube-controller-manager, kube-scheduler and Karmada's servers: about 7 minutes on two idle cores")
		p.line("on 2 cores the first time, then cached in ~/.cache/tessera; each server is named below as it is built")
		// Binaries prints the build script's lines on stderr; its own
		// heartbeat is dropped, as the step prints one.
		var err error
		paths, err = cluster.Binaries(klog.NewContext(ctx, logr.Discard()))
		return err
	})
	if err != nil {
		return err
	}
	cliDir, err := os.MkdirTemp("", "tessera-demo-cli-")
	if err != nil {
		return fmt.Errorf("make a directory for the tessera command: %w", err)
	}
	defer os.RemoveAll(cliDir)
	cli, err := buildFleetCLI(ctx, p, cliDir)
	if err != nil {
		return err
	}
	modes := []env.EstimatorMode{env.EstimatorTessera}
	if opts.Stock {
		modes = append(modes, env.EstimatorStock)
	}
	if opts.Serve != "" {
		// The environment left running for the page is the last one: Tessera's.
		slices.Reverse(modes)
	}
	var reports []scenarioReport
	for _, mode := range modes {
		r, err := runScenario(ctx, out, p, opts, paths, mode, cli)
		if err != nil {
			return err
		}
		reports = append(reports, r)
	}
	writeVerdict(out, reports)
	return nil
}

// runScenario starts an environment, runs the headline scenario in it,
// reports what happened, and tears the environment down.
func runScenario(ctx context.Context, out io.Writer, p *progress, opts Options, paths cluster.Paths, mode env.EstimatorMode, cliBin string) (report scenarioReport, err error) {
	tb := &demoTB{p: p, verbose: opts.Verbose}
	words := "with Tessera's estimator"
	if mode == env.EstimatorStock {
		words = "as it ships (no Tessera estimator)"
	}
	var e *env.Env
	err = p.run(ctx, fmt.Sprintf("Start Karmada %s and two member clusters, with node agents on mock GPUs", words), func(ctx context.Context) error {
		var err error
		e, err = env.Start(ctx, env.Options{Members: env.HeadlineMembers(), Estimator: mode, Paths: paths,
			T: tb, Progress: p.line, KeepDir: opts.Keep, LogVerbosity: 2})
		return err
	})
	if err != nil {
		return report, err
	}
	defer func() {
		if err != nil {
			tb.failed.Store(true) // keeps every log
		}
		done := p.step("Tear down every server and in-process component")
		e.Stop()
		done(nil)
		if err != nil || opts.Keep {
			p.line("logs kept in %s", e.Dir())
		}
	}()
	cli := fleetCLI{bin: cliBin, kubeconfig: e.Karmada().Kubeconfig()}
	d := demoRun{e: e, p: p, out: out, timeout: opts.StepTimeout, w: env.HeadlineWorkload(), cli: &cli, mode: mode}
	if report, err = d.run(ctx, mode); err != nil {
		return report, err
	}
	report.write(out)
	fmt.Fprintln(out)
	if opts.Serve != "" && mode == env.EstimatorTessera {
		err = p.run(ctx, "Keep the clusters running and serve the fleet page", func(ctx context.Context) error {
			return cli.serveDashboard(ctx, p, opts.Serve)
		})
	}
	return report, err
}

// demoRun is one scenario in a running environment.
type demoRun struct {
	e       *env.Env
	p       *progress
	out     io.Writer
	timeout time.Duration
	w       env.Workload
	// cli shows the fleet view: before the workload with Tessera's
	// estimator, and after it in both modes.
	cli  *fleetCLI
	mode env.EstimatorMode
}

func (d demoRun) run(ctx context.Context, mode env.EstimatorMode) (scenarioReport, error) {
	report := scenarioReport{Mode: mode, Workload: d.w}
	err := d.p.run(ctx, fmt.Sprintf("Use %s's GPUs: one pod per GPU through kube-scheduler and the extender, each leaving %d GiB free",
		env.BusyMember, env.BusyFreeMiB/1024), func(ctx context.Context) error {
		_, err := d.e.FillGPUs(ctx, env.BusyMember, env.BusyFreeMiB, env.FillerApp, d.timeout)
		return err
	})
	if err != nil {
		return report, err
	}
	err = d.p.run(ctx, "Wait until Karmada's summary of each member counts that usage (Karmada refreshes it every 10s)", func(ctx context.Context) error {
		for _, m := range d.e.Members() {
			if err := d.e.WaitClusterSummary(ctx, m.Name(), d.timeout); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return report, err
	}
	keys := d.e.Config().Keys()
	for _, m := range d.e.Members() {
		c := clusterReport{Name: m.Name()}
		if c.Before, err = m.GPUViews(ctx, keys); err != nil {
			return report, err
		}
		if c.Estimate, err = d.e.Estimates(ctx, m.Name(), d.w.Request.Resources(d.e.Config().Resources)); err != nil {
			return report, err
		}
		report.Clusters = append(report.Clusters, c)
	}
	if err := d.showFleet(ctx, true); err != nil {
		return report, err
	}
	err = d.p.run(ctx, fmt.Sprintf("Create Deployment %s and its PropagationPolicy on Karmada; wait until every replica runs or waits", d.w.Name),
		func(ctx context.Context) error {
			if err := d.e.Propagate(ctx, d.w); err != nil {
				return err
			}
			return d.waitSettled(ctx)
		})
	if err != nil {
		return report, err
	}
	if err := d.showFleet(ctx, false); err != nil {
		return report, err
	}
	return d.read(ctx, report)
}

// showFleet prints the fleet view as `tessera` shows it: before the
// workload, the fleet and what fits of one replica; after, the fleet.
func (d demoRun) showFleet(ctx context.Context, before bool) error {
	switch {
	case !before && d.mode == env.EstimatorStock:
		fmt.Fprintln(d.out, "\nThe fleet once Karmada's stock estimate has divided the replicas (see WAITING PODS):")
		if err := d.cli.show(ctx, d.out, "fleet"); err != nil {
			return err
		}
		return d.cli.show(ctx, d.out, "pods", "--cluster", env.BusyMember)
	case !before:
		fmt.Fprintln(d.out, "\nThe fleet once the replicas run:")
		return d.cli.show(ctx, d.out, "fleet")
	case d.mode == env.EstimatorStock:
		return nil
	}
	fmt.Fprintln(d.out, "\nThe fleet before the workload, as the tessera command shows it (go install ./cmd/tessera):")
	if err := d.cli.show(ctx, d.out, "fleet"); err != nil {
		return err
	}
	r := d.w.Request
	return d.cli.show(ctx, d.out, "fit", "--vgpu", fmt.Sprint(r.GPUs), "--memory", fmt.Sprintf("%dGi", r.MemoryMiB/1024),
		"--replicas", fmt.Sprint(d.w.Replicas))
}

// waitSettled waits until Karmada has placed every replica and each member
// has exactly its share of pods, each Running or Pending with a reason.
func (d demoRun) waitSettled(ctx context.Context) error {
	return env.Eventually(ctx, d.timeout, "every replica to be placed, and to run or wait with a reason", func(ctx context.Context) (bool, string, error) {
		rb, err := d.e.Binding(ctx, d.w.Namespace, d.w.Name)
		if err != nil || rb == nil {
			return false, fmt.Sprintf("no ResourceBinding yet (%v)", err), nil
		}
		placed := env.Placement(rb)
		total := int32(0)
		for _, n := range placed {
			total += n
		}
		if total != d.w.Replicas {
			return false, fmt.Sprintf("placement %v; %s", placed, env.DescribeConditions(rb.Status.Conditions)), nil
		}
		all, err := d.e.AllReplicas(ctx, d.w.Namespace, d.w.Name)
		if err != nil {
			return false, err.Error(), nil
		}
		for _, member := range slices.Sorted(maps.Keys(all)) {
			rs := all[member]
			if int32(len(rs)) != placed[member] {
				return false, fmt.Sprintf("%s has %d pods of %d placed", member, len(rs), placed[member]), nil
			}
			for _, r := range rs {
				settled := (r.Phase == corev1.PodRunning && r.Ready) || (r.Phase == corev1.PodPending && r.Node == "" && r.Why != "")
				if !settled {
					return false, fmt.Sprintf("%s/%s is %s on %q", member, r.Name, r.Phase, r.Node), nil
				}
			}
		}
		return true, "", nil
	})
}

// read fills in what happened: the placement, the replicas and the GPUs after.
func (d demoRun) read(ctx context.Context, report scenarioReport) (scenarioReport, error) {
	rb, err := d.e.Binding(ctx, d.w.Namespace, d.w.Name)
	if err != nil {
		return report, err
	}
	if rb == nil {
		return report, errors.New("the ResourceBinding disappeared")
	}
	placed := env.Placement(rb)
	report.Binding = env.DescribeConditions(rb.Status.Conditions)
	keys := d.e.Config().Keys()
	for i := range report.Clusters {
		c := &report.Clusters[i]
		m := d.e.Member(c.Name)
		c.Placed = placed[c.Name]
		if c.After, err = m.GPUViews(ctx, keys); err != nil {
			return report, err
		}
		rs, err := m.Replicas(ctx, d.w.Namespace, d.w.Name, keys)
		if err != nil {
			return report, err
		}
		for _, r := range rs {
			c.Replicas = append(c.Replicas, servedReplica(m, r))
		}
	}
	return report, nil
}

// servedReplica adds what the device plugin's Allocate answered for the
// replica's GPU container: the GPUs and memory limit it would see.
func servedReplica(m *env.Member, r env.Replica) replicaReport {
	rep := replicaReport{Replica: r}
	n := m.Node(r.Node)
	if n == nil {
		return rep
	}
	allocs, rejected, seen := n.Admission(r.UID)
	switch {
	case !seen:
		return rep
	case rejected != "":
		rep.Rejected = rejected
		return rep
	}
	for _, a := range allocs {
		envs := a.Response.GetEnvs()
		rep.Served = true
		rep.VisibleDevices = append(rep.VisibleDevices, envs[deviceplugin.VisibleDevicesEnv])
		// The limits file the node agent wrote once the kubelet named the
		// container, as the interception library reads it.
		limit := "none"
		switch l, ok, err := deviceplugin.ContainerLimits(a.Response); {
		case err != nil:
			limit = "unreadable (" + err.Error() + ")"
		case ok && l.Refused != "":
			limit = "refused (" + l.Refused + ")"
		case ok && len(l.Devices) > 0:
			limit = strconv.FormatInt(l.Devices[0].MemoryMiB, 10)
		}
		rep.MemoryLimits = append(rep.MemoryLimits, limit)
	}
	return rep
}
