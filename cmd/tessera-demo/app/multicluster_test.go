package app

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoAcrossClusters runs what `make demo` runs, servers and all, and
// checks that its report shows what happened: with Tessera's estimator
// every replica runs in member-b; with Karmada's stock estimate some are
// sent to member-a and wait there for a GPU with 40 GiB free.
func TestDemoAcrossClusters(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: starts Karmada and two member clusters of real servers twice " +
			"(built once by test/tools/build-servers.sh, about 7 minutes on a cold cache)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := Run(ctx, &out, Options{Stock: true, StepTimeout: 4 * time.Minute}); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{
		"==> Build the real servers from Go modules",
		"Karmada's general estimate 6, Tessera's estimate 0 -> Karmada goes by 0",
		"Karmada's general estimate 4, Tessera's estimate 4 -> Karmada goes by 4",
		"Karmada's decision: member-a 0, member-b 4",
		"With Tessera's estimator: 4 in member-b; 4 running, 0 pending.",
		"Karmada's general estimate 6, Tessera's estimate 0 (Karmada does not ask Tessera here) -> Karmada goes by 6",
		"needs 1 GPU with 40960 MiB free",
		"==> Tear down every server and in-process component",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The stock run's verdict line: replicas in member-a, some pending.
	i := strings.Index(report, "With Karmada's stock estimate: ")
	if i < 0 {
		t.Fatalf("no verdict for the stock run:\n%s", report)
	}
	verdict := report[i:]
	verdict = verdict[:strings.IndexByte(verdict, '\n')]
	if !strings.Contains(verdict, "in member-a") || strings.Contains(verdict, " 0 pending") {
		t.Errorf("stock verdict %q: want replicas in member-a, some pending", verdict)
	}
	if t.Failed() {
		t.Logf("report:\n%s", report)
	}
}
