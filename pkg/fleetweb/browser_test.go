package fleetweb

import (
	"context"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/test/browser"
)

// servePage starts the real server on a loopback port and returns its URL.
func servePage(ctx context.Context, t testing.TB, src Source) string {
	t.Helper()
	srv, err := NewServer(src, Options{Config: config.Default(), Refresh: time.Hour, LoopbackHostsOnly: true,
		Now: func() time.Time { return testReadAt.Add(3 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

// TestPageInChromium loads the page in Debian's real Chromium and checks
// that it shows exactly the fleet's JSON, answers the form as State.Fit
// does, shows an unreachable member beside the others, runs nothing that a
// cluster's data carries, logs no error, and fits a phone's width.
func TestPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the headless Chromium test")
	}
	exe := browser.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	st := testState(t)
	url := servePage(ctx, t, Static{State: st})
	out := browser.OutputDir(t)
	expected400 := 0 // console errors for the 400 the fit form's bad input gets

	b := browser.New(ctx, t, browser.Options{ExecPath: exe, Width: 1440, Height: 900})
	if err := b.Navigate(url); err != nil {
		t.Fatal(err)
	}
	if err := b.WaitFleet(st.Fleet.ReadAt, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	t.Run("fleet table equals the JSON", func(t *testing.T) {
		checkRows(t, b, "#fleet-table tbody tr", browser.FleetRows(st.Fleet))
		checkRows(t, b, "#fleet-table tfoot tr", browser.TotalRows(st.Fleet))
	})
	t.Run("tiles equal the GPUs", func(t *testing.T) {
		tiles, err := b.Tiles()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range browser.CompareTiles(tiles, st.Fleet) {
			t.Error(d)
		}
	})
	t.Run("unreachable member shown beside the others", func(t *testing.T) {
		rows, err := b.Rows(`#fleet-table tbody tr[data-cluster="gamma"]`)
		if err != nil || len(rows) != 1 {
			t.Fatalf("gamma rows %v: %v", rows, err)
		}
		if rows[0][1].Value != "unreachable" || !strings.Contains(rows[0][1].Text, "connection refused <i>x</i>") {
			t.Errorf("gamma's status cell %+v, want unreachable with its reason as text", rows[0][1])
		}
		verdicts, err := browser.Eval[[]string](b, `Array.from(document.querySelectorAll('#mosaic-clusters .verdict')).map((e) => e.textContent)`)
		if err != nil {
			t.Fatal(err)
		}
		// alpha: 80 GiB free in 10 GiB pieces; beta: whole GPUs free.
		if len(verdicts) != 3 || !strings.HasPrefix(verdicts[0], "fragmented") || !strings.Contains(verdicts[1], "whole GPUs free") {
			t.Errorf("mosaic verdicts %q: want alpha fragmented and beta with whole GPUs free", verdicts)
		}
	})
	t.Run("markup from clusters is text and runs nothing", func(t *testing.T) {
		got, err := browser.Eval[map[string]any](b, `({
			imgs: document.querySelectorAll('img').length,
			scripts: Array.from(document.scripts).map((s) => s.getAttribute('src')),
			// Markup in the test data wraps these words in b and i elements.
			bold: Array.from(document.querySelectorAll('b, i')).filter((e) => ['a', 'x', 'Insufficient'].includes(e.textContent)).length,
			modelCell: Array.from(document.querySelectorAll('#fleet-table td')).some((td) => td.textContent === `+jsString(xssModel)+`),
			podCell: Array.from(document.querySelectorAll('#pods-table th')).some((th) => th.textContent === `+jsString(xssPod)+`),
		})`)
		if err != nil {
			t.Fatal(err)
		}
		if got["imgs"] != float64(0) || got["bold"] != float64(0) || got["modelCell"] != true || got["podCell"] != true ||
			!slices.Equal(anyStrings(got["scripts"]), []string{"app.js"}) {
			t.Errorf("page after drawing markup-carrying names: %v; want no img, b or i element, only app.js, and the names as text", got)
		}
	})
	t.Run("what fits equals State.Fit", func(t *testing.T) {
		if p := b.Problems(); len(p) > 0 {
			t.Errorf("the browser console has errors: %q", p)
		}
		if _, err := b.FitShape(fleet.Shape{VGPUs: 1, Memory: "lots"}, 0, 20*time.Second); err == nil || !strings.Contains(err.Error(), "memory") {
			t.Errorf("a bad memory quantity: %v, want the server's error shown", err)
		}
		// Chromium logs every 4xx answer to the console; this one is the
		// answer the form asked for.
		expected400 = len(b.Problems())
		for _, tc := range []struct {
			shape    fleet.Shape
			replicas int32
		}{{fleet.Shape{VGPUs: 1, Memory: "20Gi"}, 4}, {fleet.Shape{VGPUs: 2, Memory: "8Gi", Cores: 20}, 0}, {fleet.Shape{Memory: "5Gi"}, 100}} {
			tpl, err := tc.shape.Template(config.Default().Resources)
			if err != nil {
				t.Fatal(err)
			}
			want, err := st.Fit(ctx, fleet.FitRequest{Template: tpl, Replicas: tc.replicas})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := b.FitShape(tc.shape, tc.replicas, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			checkValues(t, rows, browser.FitRows(want))
		}
	})
	t.Run("pods filter", func(t *testing.T) {
		if err := chromedp.Do(b.Context(), chromedp.SetValue(chromedp.ID("pod-cluster"), "beta"),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('pod-cluster').dispatchEvent(new Event('change'))`)); err != nil {
			t.Fatal(err)
		}
		rows, err := b.Rows("#pods-table tbody tr")
		if err != nil {
			t.Fatal(err)
		}
		var want int
		for _, c := range st.Fleet.Clusters {
			if c.Name == "beta" {
				want = len(c.Pods)
			}
		}
		if len(rows) != want {
			t.Errorf("%d pod rows for cluster beta, want %d", len(rows), want)
		}
		for _, r := range rows {
			if r[0].Text != "beta" {
				t.Errorf("row of cluster %q under the beta filter", r[0].Text)
			}
		}
	})
	t.Run("keyboard reaches the tiles", func(t *testing.T) {
		if err := chromedp.Do(b.Context(), chromedp.Focus(chromedp.CSS(`[data-cluster="beta"] .gpu[tabindex="0"]`)),
			chromedp.KeyEvent(kb.ArrowRight)); err != nil {
			t.Fatal(err)
		}
		got, err := browser.Eval[map[string]any](b, `({uuid: document.activeElement.dataset.uuid,
			tip: document.getElementById('tip').hidden ? '' : document.getElementById('tip').textContent})`)
		if err != nil {
			t.Fatal(err)
		}
		if got["uuid"] != "GPU-beta-0-1" || !strings.Contains(got["tip"].(string), xssModel) {
			t.Errorf("after focusing beta's first tile and pressing →: %v; want GPU-beta-0-1 focused and its tooltip shown", got)
		}
	})
	// With a tile's tooltip showing.
	if err := b.Screenshot(filepath.Join(out, "fleet-page-desktop.png"),
		chromedp.Focus(chromedp.CSS(`[data-cluster="beta"] .gpu[data-uuid="GPU-beta-0-0"]`))); err != nil {
		t.Error(err)
	}
	t.Run("phone width does not overflow", func(t *testing.T) {
		if err := b.SetViewport(390, 844, true); err != nil {
			t.Fatal(err)
		}
		over, err := browser.Eval[map[string]float64](b, `({scroll: document.documentElement.scrollWidth, inner: window.innerWidth, body: document.body.scrollWidth})`)
		if err != nil {
			t.Fatal(err)
		}
		if over["scroll"] > over["inner"] || over["body"] > over["inner"] {
			t.Errorf("at 390 px the page is %v px wide (body %v): it overflows sideways", over["scroll"], over["body"])
		}
		if err := b.Screenshot(filepath.Join(out, "fleet-page-phone.png")); err != nil {
			t.Error(err)
		}
	})
	if d := b.Dialogs(); len(d) > 0 {
		t.Errorf("the page opened dialogs: %q", d)
	}
	for i, p := range b.Problems() {
		if i < expected400 && strings.Contains(p, "status of 400") && strings.Contains(p, "/api/fit") {
			continue
		}
		t.Errorf("the browser console has an error: %s", p)
	}
	t.Logf("screenshots: %s", out)
}

func checkRows(t *testing.T, b *browser.Browser, selector string, want [][]string) {
	t.Helper()
	rows, err := b.Rows(selector)
	if err != nil {
		t.Fatal(err)
	}
	checkValues(t, rows, want)
}

func checkValues(t *testing.T, rows []browser.Row, want [][]string) {
	t.Helper()
	if len(rows) != len(want) {
		t.Errorf("%d rows, want %d", len(rows), len(want))
	}
	for i := range min(len(rows), len(want)) {
		if got := rows[i].Values(); !slices.Equal(got, want[i]) {
			t.Errorf("row %d:\n got %q\nwant %q", i, got, want[i])
		}
	}
}

func jsString(s string) string { return mustJSON(s) }

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
