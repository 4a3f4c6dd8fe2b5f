package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// TestHeadlineWithTesseraEstimator is the headline scenario with Tessera's
// estimator behind both members' estimator Services, then its variants in
// the same environment, in order:
//
//  1. 4 replicas x 1 vGPU x 40 GiB, divided by available replicas: member-a
//     has 256 GiB free but no GPU with 40 GiB, so Tessera says 0 there and
//     all 4 land in member-b, placed by the extender and allocated;
//  2. member-b is full: scaling to 6 finds no room anywhere, Karmada keeps
//     4 and reports the binding unschedulable; once member-a's GPUs free
//     up, the 2 new replicas go to member-a and run;
//  3. member-a's estimator is down: Karmada still schedules, with its
//     general estimate alone for member-a, so a scale-up lands 2 replicas
//     on member-a's fragmented GPUs where they stay Pending.
//
// reconnectTimeout bounds how long karmada-scheduler may take to reconnect
// to a restarted estimator: gRPC's reconnect back-off is capped at 2 minutes.
const reconnectTimeout = 3 * time.Minute

// holdFull is how long both members stay without room after the scale-up,
// so that Karmada's retries back off as they would in a real wait.
const holdFull = 15 * time.Second

func TestHeadlineWithTesseraEstimator(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	e := startHeadline(ctx, t, env.EstimatorTessera)
	w := env.HeadlineWorkload()

	if !t.Run("all replicas land where they fit", func(t *testing.T) { headlineLandsInIdle(ctx, t, e, w) }) {
		t.FailNow()
	}
	if !t.Run("idle member full, busy member frees up", func(t *testing.T) { fullThenFreed(ctx, t, e, w) }) {
		t.FailNow()
	}
	t.Run("busy member's estimator down", func(t *testing.T) { estimatorDown(ctx, t, e, w) })

	// Teardown: every in-process component stops cleanly and in time.
	e.Stop()
	if err := e.StopErr(); err != nil {
		t.Errorf("teardown: %v", err)
	}
}

func headlineLandsInIdle(ctx context.Context, t *testing.T, e *env.Env, w env.Workload) {
	for member, want := range map[string]env.Estimate{
		env.BusyMember: {Used: 0, Stock: 6, Tessera: 0}, // 256 GiB free / 40 GiB = 6; no GPU with 40 GiB
		env.IdleMember: {Used: 4, Stock: 4, Tessera: 4}, // two empty 80 GiB GPUs: 2 each
	} {
		got := estimates(ctx, t, e, member)
		if got.TesseraErr != nil || got != want {
			t.Fatalf("%s: estimates %+v, want %+v", member, got, want)
		}
	}
	start := time.Now()
	if err := e.Propagate(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitPlacement(ctx, w.Namespace, w.Name, map[string]int32{env.IdleMember: 4}, placementTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("Karmada placed %s after %s", w.Name, time.Since(start).Round(time.Millisecond))
	idle := waitReplicas(ctx, t, e, env.IdleMember, w.Name, 4, 0)
	checkPlacedAndAllocated(ctx, t, e, env.IdleMember, idle)
	t.Logf("4 replicas running in %s after %s", env.IdleMember, time.Since(start).Round(time.Millisecond))
	waitReplicas(ctx, t, e, env.BusyMember, w.Name, 0, 0)

	// Two replicas per 80 GiB GPU: both GPUs of the idle member are full.
	views, err := e.Member(env.IdleMember).GPUViews(ctx, e.Config().Keys())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if v.Used.MemoryMiB != 2*env.HeadlineMemoryMiB || v.Used.Slots != 2 {
			t.Errorf("%s GPU %s: used %+v, want 2 replicas of %d MiB", env.IdleMember, v.UUID, v.Used, env.HeadlineMemoryMiB)
		}
	}
}

func fullThenFreed(ctx context.Context, t *testing.T, e *env.Env, w env.Workload) {
	if err := e.WaitClusterSummary(ctx, env.IdleMember, summaryTimeout); err != nil {
		t.Fatal(err)
	}
	if got := estimates(ctx, t, e, env.IdleMember); got.TesseraErr != nil || got.Tessera != 0 || got.Stock != 0 {
		t.Fatalf("%s is full, yet estimates are stock %d, Tessera %d (%v)", env.IdleMember, got.Stock, got.Tessera, got.TesseraErr)
	}
	if err := e.Scale(ctx, w.Namespace, w.Name, 6); err != nil {
		t.Fatal(err)
	}
	// Tessera: 0 in both members. Karmada keeps the 4 it placed and says
	// the binding cannot be scheduled.
	scaled := time.Now()
	waitUnschedulable(ctx, t, e, w, 6)
	if err := e.WaitPlacement(ctx, w.Namespace, w.Name, map[string]int32{env.IdleMember: 4}, time.Second); err != nil {
		t.Fatal(err)
	}
	waitReplicas(ctx, t, e, env.BusyMember, w.Name, 0, 0)
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(holdFull):
	}
	if err := e.WaitPlacement(ctx, w.Namespace, w.Name, map[string]int32{env.IdleMember: 4}, time.Second); err != nil {
		t.Fatalf("while no member had room: %v", err)
	}

	// The busy member's GPUs free up.
	fillers, err := e.Member(env.BusyMember).Client().CoreV1().Pods(env.HeadlineNamespace).List(ctx, metav1.ListOptions{LabelSelector: env.AppLabel + "=" + env.FillerApp})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range fillers.Items {
		if err := e.Member(env.BusyMember).Client().CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	freed := time.Now()
	err = env.Eventually(ctx, podTimeout, "Tessera's estimate for the freed member to reach 16", func(ctx context.Context) (bool, string, error) {
		got := estimates(ctx, t, e, env.BusyMember)
		return got.TesseraErr == nil && got.Tessera == 16, fmt.Sprintf("Tessera %d (%v)", got.Tessera, got.TesseraErr), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.WaitPlacement(ctx, w.Namespace, w.Name, map[string]int32{env.IdleMember: 4, env.BusyMember: 2}, placementTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("Karmada placed the 2 new replicas in %s %s after the GPUs freed up (%s after the scale-up)",
		env.BusyMember, time.Since(freed).Round(time.Millisecond), time.Since(scaled).Round(time.Millisecond))
	busy := waitReplicas(ctx, t, e, env.BusyMember, w.Name, 2, 0)
	checkPlacedAndAllocated(ctx, t, e, env.BusyMember, busy)
	waitReplicas(ctx, t, e, env.IdleMember, w.Name, 4, 0)
}

// waitUnschedulable waits until Karmada has seen the binding's new replica
// count and reports it unschedulable.
func waitUnschedulable(ctx context.Context, t *testing.T, e *env.Env, w env.Workload, replicas int32) {
	t.Helper()
	err := env.Eventually(ctx, placementTimeout, fmt.Sprintf("Karmada to find no room for %d replicas of %s", replicas, w.Name), func(ctx context.Context) (bool, string, error) {
		rb, err := e.Binding(ctx, w.Namespace, w.Name)
		if err != nil || rb == nil {
			return false, fmt.Sprintf("binding %v", err), nil
		}
		c := meta.FindStatusCondition(rb.Status.Conditions, workv1alpha2.Scheduled)
		state := fmt.Sprintf("spec.replicas %d, placement %v, conditions %s", rb.Spec.Replicas, env.Placement(rb), env.DescribeConditions(rb.Status.Conditions))
		return rb.Spec.Replicas == replicas && c != nil && c.Status == metav1.ConditionFalse, state, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func estimatorDown(ctx context.Context, t *testing.T, e *env.Env, w env.Workload) {
	// Fragment the busy member again: every GPU keeps at most 32 GiB free.
	if _, err := e.FillGPUs(ctx, env.BusyMember, env.BusyFreeMiB, "filler-again", podTimeout); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitClusterSummary(ctx, env.BusyMember, summaryTimeout); err != nil {
		t.Fatal(err)
	}
	before := estimates(ctx, t, e, env.BusyMember)
	if before.TesseraErr != nil || before.Tessera != 0 || before.Stock < 2 {
		t.Fatalf("%s re-fragmented: stock %d, Tessera %d (%v); want stock >= 2 and Tessera 0", env.BusyMember, before.Stock, before.Tessera, before.TesseraErr)
	}
	if err := e.Member(env.BusyMember).StopEstimator(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := e.Scale(ctx, w.Namespace, w.Name, 8); err != nil {
		t.Fatal(err)
	}
	// karmada-scheduler's call to the stopped estimator fails; it ignores
	// that estimator and keeps the general estimate for member-a.
	if err := e.WaitPlacement(ctx, w.Namespace, w.Name, map[string]int32{env.IdleMember: 4, env.BusyMember: 4}, placementTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("with %s's estimator down, Karmada placed 2 more replicas there %s after the scale-up (stock estimate %d)",
		env.BusyMember, time.Since(start).Round(time.Millisecond), before.Stock)
	busy := waitReplicas(ctx, t, e, env.BusyMember, w.Name, 2, 2)
	checkPendingForGPUs(t, env.BusyMember, busy)
	checkPlacedAndAllocated(ctx, t, e, env.BusyMember, busy)

	// The estimator comes back on its port. karmada-scheduler reconnects
	// on its own (gRPC back-off); until then it would go on without it.
	m := e.Member(env.BusyMember)
	if err := m.RestartEstimator(ctx); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	err := env.Eventually(ctx, reconnectTimeout, "karmada-scheduler to reconnect to the restarted estimator", func(context.Context) (bool, string, error) {
		n := m.EstimatorConnections()
		return n > 0, fmt.Sprintf("%d connections", n), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("karmada-scheduler reconnected to %s's restarted estimator after %s", env.BusyMember, time.Since(restarted).Round(time.Millisecond))
	if err := e.Scale(ctx, w.Namespace, w.Name, 10); err != nil {
		t.Fatal(err)
	}
	waitUnschedulable(ctx, t, e, w, 10)
	if err := e.WaitPlacement(ctx, w.Namespace, w.Name, map[string]int32{env.IdleMember: 4, env.BusyMember: 4}, time.Second); err != nil {
		t.Fatal(err)
	}
}
