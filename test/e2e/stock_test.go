package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// TestHeadlineWithStockEstimator runs the same headline Deployment against
// Karmada as it is without Tessera's estimator
// (--enable-scheduler-estimator=false: its general estimator only). That
// estimator divides member-a's 256 GiB of free memory by 40 GiB and offers
// 6 replicas there, against 4 in member-b, so Karmada sends replicas to
// member-a, where no single GPU has 40 GiB free: they stay Pending with the
// extender's reason, while member-b's replicas run.
// stayPendingFor is how long the stock test watches the Pending replicas.
const stayPendingFor = 20 * time.Second

func TestHeadlineWithStockEstimator(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	e := startHeadline(ctx, t, env.EstimatorStock)
	w := env.HeadlineWorkload()

	// Tessera's estimator runs, but Karmada does not ask it.
	for member, want := range map[string]env.Estimate{
		env.BusyMember: {Used: 6, Stock: 6, Tessera: 0},
		env.IdleMember: {Used: 4, Stock: 4, Tessera: 4},
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
	// Karmada divides 4 by the weights 6:4; its dispenser may round either
	// way, so wait for any complete placement and then check it.
	var placement map[string]int32
	err := env.Eventually(ctx, placementTimeout, "Karmada to place all 4 replicas", func(ctx context.Context) (bool, string, error) {
		rb, err := e.Binding(ctx, w.Namespace, w.Name)
		if err != nil || rb == nil {
			return false, "no binding yet", nil
		}
		placement = env.Placement(rb)
		return placement[env.BusyMember]+placement[env.IdleMember] == 4, env.DescribeConditions(rb.Status.Conditions), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stock Karmada placed %s as %v after %s", w.Name, placement, time.Since(start).Round(time.Millisecond))
	busy, idle := int(placement[env.BusyMember]), int(placement[env.IdleMember])
	if busy < 2 {
		t.Fatalf("stock Karmada sent %d replicas to %s (weights 6:4 of 4 replicas give it 2 or 3)", busy, env.BusyMember)
	}
	pending := waitReplicas(ctx, t, e, env.BusyMember, w.Name, 0, busy)
	checkPendingForGPUs(t, env.BusyMember, pending)
	running := waitReplicas(ctx, t, e, env.IdleMember, w.Name, idle, 0)
	checkPlacedAndAllocated(ctx, t, e, env.IdleMember, running)

	// They stay Pending: nothing in member-a changes, and Karmada does not
	// move replicas it has placed (there is no descheduler here). Two of
	// Karmada's 10s summary refreshes later they are still where they were.
	select {
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	case <-time.After(stayPendingFor):
	}
	pending = waitReplicas(ctx, t, e, env.BusyMember, w.Name, 0, busy)
	checkPendingForGPUs(t, env.BusyMember, pending)
}
