package e2e

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// settleTimeout bounds how long, after the last fault's target is ready
// again, the environment may take to reach a state with nothing unsettled.
// What takes longest is Karmada's: a binding that could not be scheduled
// is retried on a growing back-off, and a member's estimator reconnected
// on gRPC's.
const settleTimeout = 4 * time.Minute

// karmadaRetryCap caps karmada-controller-manager's retry back-off
// (--rate-limiter-max-delay, 16m40s by default). While a member is not
// Ready, Karmada's execution controller fails every sync of the member's
// Works and retries each on a doubling back-off; it does not watch
// Clusters, so once the member is Ready again a Work waits out its back-off
// and the member keeps its old replica count meanwhile: measured more than
// 4 minutes after a 13 s outage of a member's kube-apiserver
// (docs/e2e.md, "The chaos run").
const karmadaRetryCap = 10 * time.Second

// monitorEvery is how often the GPUs are checked while the faults run.
const monitorEvery = 2 * time.Second

// progressEvery is how often a wait says what it still waits for.
const progressEvery = 15 * time.Second

// chaosNamespace holds the chaos run's workloads.
const chaosNamespace = "default"

// TestChaosLosesNothing runs three Deployments of 20 replicas each (one
// vGPU with 8 GiB and 10% cores; one with 16 GiB and 20%; two vGPUs with
// 12 GiB and 10% each) through Karmada onto two members of 8 GPUs, then
// scales them up and down while, at random moments from a seeded plan,
// members' etcd and kube-apiserver are SIGKILLed and restarted on their
// ports and data, and extenders, estimators, node agents and kubelets
// (with their pods running) are stopped and started again. Within
// settleTimeout of the last restart, every replica must be Running or
// Pending with a reason, in the number Karmada gave each member, with no
// GPU over its capacity, every container on its assignment's GPUs and
// limits, and every estimator's answers exact again (env.CheckChaos).
//
// make test runs the short form (env.ShortChaosFaults: one fault of each
// kind); `make chaos` the long form. The seed is printed; TESSERA_CHAOS_SEED
// replays a run's plan (the timing of the components around it differs).
func TestChaosLosesNothing(t *testing.T) {
	skipUnlessServers(t)
	seed, faults, err := env.ParseChaosSettings(os.Getenv(env.ChaosSeedEnv), os.Getenv(env.ChaosFaultsEnv), rand.Uint64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("chaos seed %d, %d faults; replay with %s=%d %s=%d go test -tags kubernetes_protomessage_one_more_release -run TestChaosLosesNothing -v ./test/e2e/",
		seed, faults, env.ChaosSeedEnv, seed, env.ChaosFaultsEnv, faults)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	members := env.ChaosMembers()
	e, err := env.Start(ctx, env.Options{Members: members, Paths: paths, T: t, LogVerbosity: 2, KeepDir: os.Getenv(keepEnv) != "",
		KarmadaControllerManagerArgs: []string{"--rate-limiter-max-delay=" + karmadaRetryCap.String()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	workloads := env.ChaosWorkloads(chaosNamespace)
	for _, w := range workloads {
		if err := e.Propagate(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	// Before any fault, the checks hold: what the run ends with is not
	// something the environment never reaches.
	settle(ctx, t, e, workloads, "the workloads to run before any fault")

	plan, err := env.PlanChaos(env.ChaosSpec{
		Seed: seed, Faults: faults, Members: members, Workloads: workloads, MinReplicas: 4,
		Gap: [2]time.Duration{time.Second, 5 * time.Second}, Down: [2]time.Duration{time.Second, 8 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	stopMonitor := e.MonitorGPUs(ctx, monitorEvery)
	records, scaleErrs := e.RunChaos(ctx, plan, chaosNamespace)
	var lines []string
	for i, r := range records {
		lines = append(lines, r.String())
		if r.Err != nil {
			t.Errorf("fault %d, %s: %v", i+1, r.Target(), r.Err)
		}
	}
	t.Logf("the %d faults that occurred (seed %d), %d scale steps:\n  %s", len(records), seed, len(plan.Scales), strings.Join(lines, "\n  "))
	for _, err := range scaleErrs {
		t.Errorf("scale: %v", err)
	}
	settle(ctx, t, e, workloads, "the environment to settle after the last fault")
	if seen := stopMonitor(); len(seen) > 0 {
		t.Errorf("while the faults ran, every %s:\n  %s", monitorEvery, strings.Join(seen, "\n  "))
	}

	e.Stop()
	if err := e.StopErr(); err != nil {
		t.Errorf("teardown: %v", err)
	}
}

// settle waits until env.CheckChaos finds nothing; a violation fails at
// once, something unsettled past settleTimeout fails with what it was.
func settle(ctx context.Context, t *testing.T, e *env.Env, workloads []env.Workload, what string) {
	t.Helper()
	start, told := time.Now(), time.Now()
	var last env.Findings
	err := env.Eventually(ctx, settleTimeout, what, func(ctx context.Context) (bool, string, error) {
		f, err := e.CheckChaos(ctx, workloads)
		last = f
		if time.Since(told) > progressEvery && len(f.Unsettled) > 0 {
			told = time.Now()
			t.Logf("%s: after %s still:\n  %s", what, time.Since(start).Round(time.Second), strings.Join(f.Unsettled, "\n  "))
		}
		if err != nil {
			return false, err.Error(), nil // a member's API server may be catching up
		}
		if len(f.Violations) > 0 {
			t.Errorf("%s: violations:\n  %s", what, strings.Join(f.Violations, "\n  "))
			return false, "", errViolation
		}
		return f.Clean(), strings.Join(f.Unsettled, "; "), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: settled after %s:\n  %s", what, time.Since(start).Round(100*time.Millisecond), strings.Join(last.Summary, "\n  "))
}

// errViolation ends a wait at the first violation (listed by the check).
var errViolation = errors.New("a GPU was overcommitted or a container ran on what it was not assigned")
