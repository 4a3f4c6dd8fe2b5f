package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/test/browser"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// pageTimeout bounds how long the page may take to show a new read.
const pageTimeout = 60 * time.Second

// TestFleetPage runs `tessera dashboard` as a subprocess against the real
// Karmada of the headline environment and drives its page in Debian's real
// headless Chromium: the fleet table and the tiles show what `tessera
// fleet -o json` prints, the "what fits" form gives what the estimators
// answer over gRPC, and a stopped member turns unreachable while the other
// stays. The browser's console stays free of errors; screenshots are left
// in the test's output directory.
func TestFleetPage(t *testing.T) {
	skipUnlessServers(t)
	exe := browser.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	e := startHeadline(ctx, t, env.EstimatorTessera)
	bin, err := env.BuildCLI(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{env.BusyMember, env.IdleMember} {
		if err := e.WaitClusterSummary(ctx, m, summaryTimeout); err != nil {
			t.Fatal(err)
		}
	}
	url := startDashboard(ctx, t, e, bin)
	out := browser.OutputDir(t)
	b := browser.New(ctx, t, browser.Options{ExecPath: exe})
	if err := b.Navigate(url); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitTrue(`document.body.dataset.readAt !== undefined`, pageTimeout); err != nil {
		t.Fatal(err)
	}

	t.Run("table and tiles equal tessera fleet -o json", func(t *testing.T) {
		// The page and the CLI read at different moments; nothing changes
		// in between, so the page must come to show exactly the CLI's JSON.
		f := runFleetJSON(ctx, t, e, bin)
		waitPageShows(t, b, f)
	})
	t.Run("what fits equals the estimators over gRPC", func(t *testing.T) {
		for _, s := range []env.GPURequest{{GPUs: 1, MemoryMiB: 40 << 10}, {GPUs: 1, MemoryMiB: 16 << 10}, {GPUs: 2, MemoryMiB: 40 << 10}} {
			rows, err := b.FitShape(fleet.Shape{VGPUs: int(s.GPUs), Memory: fmt.Sprintf("%dMi", s.MemoryMiB), Cores: int(s.Cores)}, 0, pageTimeout)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				v := r.Values()
				est, err := e.Estimates(ctx, v[0], s.Resources(e.Config().Resources))
				if err != nil || est.TesseraErr != nil {
					t.Fatalf("estimates for %s: %v %v", v[0], err, est.TesseraErr)
				}
				want := []string{v[0], fmt.Sprint(est.Tessera), fmt.Sprint(est.Stock), fmt.Sprint(est.Used)}
				if !slices.Equal(v[:4], want) {
					t.Errorf("%+v: the page shows %q, the estimators %q", s, v[:4], want)
				}
			}
		}
	})
	if err := b.Screenshot(filepath.Join(out, "fleet-page.png")); err != nil {
		t.Error(err)
	}
	t.Run("a stopped member is unreachable, the rest stays", func(t *testing.T) {
		e.Member(env.IdleMember).Cluster().Stop()
		sel := fmt.Sprintf(`#fleet-table tbody tr[data-cluster=%q] td[data-value]`, env.IdleMember)
		if err := b.WaitTrue(fmt.Sprintf(`(document.querySelector(%q) || {}).dataset?.value === 'unreachable'`, sel), 2*pageTimeout); err != nil {
			t.Fatal(err)
		}
		f := runFleetJSON(ctx, t, e, bin)
		if c := f.Clusters[1]; c.Reachable {
			t.Fatalf("tessera fleet still reads %s", c.Name)
		}
		rows, err := b.Rows(fmt.Sprintf(`#fleet-table tbody tr[data-cluster=%q]`, env.BusyMember))
		if err != nil {
			t.Fatal(err)
		}
		want := [][]string{}
		for _, r := range browser.FleetRows(f) {
			if r[0] == env.BusyMember {
				want = append(want, r)
			}
		}
		if len(rows) != len(want) || len(rows) == 0 {
			t.Fatalf("%s: %d rows, want %d", env.BusyMember, len(rows), len(want))
		}
		for i := range rows {
			if !slices.Equal(rows[i].Values(), want[i]) {
				t.Errorf("%s row %d: %q, want %q", env.BusyMember, i, rows[i].Values(), want[i])
			}
		}
		if err := b.Screenshot(filepath.Join(out, "fleet-page-member-down.png")); err != nil {
			t.Error(err)
		}
	})
	if d := b.Dialogs(); len(d) > 0 {
		t.Errorf("the page opened dialogs: %q", d)
	}
	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the browser console has errors: %q", p)
	}
}

// startDashboard runs `tessera dashboard` on a free loopback port and
// returns the page's URL, which it prints first.
func startDashboard(ctx context.Context, t *testing.T, e *env.Env, bin string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, bin, "dashboard", "--kubeconfig", e.DashboardKubeconfig(),
		"--listen", "127.0.0.1:0", "--refresh", "2s", "--timeout", "5s")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The environment reads the log for forbidden answers at Stop.
	logFile, err := e.ProcessLog("tessera-dashboard")
	if err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start tessera dashboard: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("tessera dashboard printed no address (log %s): %v", logFile, err)
	}
	_, rest, ok := strings.Cut(line, "http://")
	addr, _, _ := strings.Cut(rest, "/")
	if !ok || addr == "" {
		t.Fatalf("tessera dashboard printed %q, want its address", line)
	}
	return "http://" + addr + "/"
}

// waitPageShows waits until the page's fleet table and tiles equal f.
func waitPageShows(t *testing.T, b *browser.Browser, f fleet.Fleet) {
	t.Helper()
	want := browser.FleetRows(f)
	deadline := time.Now().Add(pageTimeout)
	for {
		rows, err := b.Rows("#fleet-table tbody tr")
		if err != nil {
			t.Fatal(err)
		}
		tiles, err := b.Tiles()
		if err != nil {
			t.Fatal(err)
		}
		var diffs []string
		if len(rows) != len(want) {
			diffs = append(diffs, fmt.Sprintf("%d rows, want %d", len(rows), len(want)))
		}
		for i := range min(len(rows), len(want)) {
			if got := rows[i].Values(); !slices.Equal(got, want[i]) {
				diffs = append(diffs, fmt.Sprintf("row %d: %q, want %q", i, got, want[i]))
			}
		}
		diffs = append(diffs, browser.CompareTiles(tiles, f)...)
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page never showed tessera fleet -o json:\n%s", strings.Join(diffs, "\n"))
		}
		time.Sleep(time.Second)
	}
}
