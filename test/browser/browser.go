// Package browser drives a real, headless Chromium from Go tests (with
// chromedp) and reads what a page shows: its tables, its console, the
// dialogs it tried to open. The fleet page's unit test (pkg/fleetweb) and
// its end-to-end test against a real Karmada (test/e2e) share it.
//
// Chromium is Debian's package, installed by test/tools/install-chromium.sh
// (make test-deps). Without it, a test is skipped with a hint, or fails when
// the environment variable CI is set, so that CI never passes by skipping.
package browser

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// EnvPath names an environment variable that overrides which Chromium runs.
const EnvPath = "TESSERA_CHROMIUM"

// installHint says how to get the browser.
const installHint = "install Debian's chromium with test/tools/install-chromium.sh (or make test-deps), or set " + EnvPath

// Path finds the Chromium binary: $TESSERA_CHROMIUM, else chromium on PATH.
func Path() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		return exec.LookPath(p)
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		return "", fmt.Errorf("no chromium on PATH: %w", err)
	}
	return p, nil
}

// Require returns the Chromium binary, or ends the test: it fails when the
// environment variable CI is set (a CI machine must have run the setup
// script) and is skipped otherwise, with how to install it.
func Require(tb testing.TB) string {
	tb.Helper()
	p, err := Path()
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("CI is set but Chromium is missing (%v): %s", err, installHint)
	}
	tb.Skipf("Chromium is missing (%v): %s", err, installHint)
	return ""
}

// Options say how to start the browser.
type Options struct {
	// ExecPath is the Chromium binary; empty means Require's.
	ExecPath string
	// Width and Height are the window's size in CSS pixels (default 1440x900).
	Width, Height int
}

// Browser is one headless Chromium with one tab. It records every console
// error, uncaught exception, browser-log error (a resource that failed to
// load, a Content-Security-Policy violation) and dialog the page opens.
type Browser struct {
	ctx context.Context

	mu       sync.Mutex
	problems []string
	dialogs  []string
	mobile   bool // the viewport emulates a phone
}

// New starts Chromium for tb; it is stopped when tb ends. ctx bounds every
// action.
func New(ctx context.Context, tb testing.TB, opts Options) *Browser {
	tb.Helper()
	if opts.ExecPath == "" {
		opts.ExecPath = Require(tb)
	}
	if opts.Width == 0 {
		opts.Width, opts.Height = 1440, 900
	}
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(opts.ExecPath),
		chromedp.WindowSize(opts.Width, opts.Height),
		chromedp.DisableGPU,
		chromedp.UserDataDir(tb.TempDir()),
		// Nothing in a test may reach out: no component updates, no
		// safe-browsing lists, no field trials.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-pings", true),
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox (test machines
		// and containers often are root).
		allocOpts = append(allocOpts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocOpts...)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(tb.Logf))
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	b := &Browser{ctx: tabCtx}
	// Subscribing starts the browser and the tab; every message after this
	// is recorded.
	console := chromedp.Console(tabCtx)
	dialogs := chromedp.Events(tabCtx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				b.mu.Lock()
				b.problems = append(b.problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.dialogs = append(b.dialogs, fmt.Sprintf("%s: %s", ev.Type, ev.Message))
			b.mu.Unlock()
			// An open dialog blocks the page; dismiss it so the test goes on
			// and reports it.
			_, _ = chromedp.Call(tabCtx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	if err := chromedp.Do(tabCtx); err != nil {
		tb.Fatalf("start Chromium %s: %v", opts.ExecPath, err)
	}
	return b
}

// Context is the tab's context, for chromedp actions the helpers lack.
func (b *Browser) Context() context.Context { return b.ctx }

// Problems are the console errors, exceptions and browser-log errors seen.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Dialogs are the alert, confirm and prompt dialogs the page opened.
func (b *Browser) Dialogs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.dialogs...)
}

// Navigate loads url and waits for its load event.
func (b *Browser) Navigate(url string) error {
	if err := chromedp.Do(b.ctx, chromedp.Navigate(url)); err != nil {
		return fmt.Errorf("load %s: %w", url, err)
	}
	return nil
}

// WaitTrue polls a JavaScript expression until it is true.
func (b *Browser) WaitTrue(expr string, timeout time.Duration) error {
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout))); err != nil {
		return fmt.Errorf("wait until %s: %w", expr, err)
	}
	return nil
}

// Eval evaluates a JavaScript expression and decodes its JSON value into T.
func Eval[T any](b *Browser, expr string) (T, error) {
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		return v, fmt.Errorf("evaluate %s: %w", expr, err)
	}
	return v, nil
}

// Cell is one table cell: its text, with white space collapsed, and its
// data-value attribute (a machine-readable value beside prose), if any.
type Cell struct {
	Text  string `json:"text"`
	Value string `json:"value"`
}

// Row is one table row, th and td cells alike, in order.
type Row []Cell

// Values are the row's cells, each its Value when it has one, else its Text.
func (r Row) Values() []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = c.Text
		if c.Value != "" {
			out[i] = c.Value
		}
	}
	return out
}

// Rows reads every row the CSS selector matches (for example
// "#fleet-table tbody tr").
func (b *Browser) Rows(selector string) ([]Row, error) {
	sel, err := json.Marshal(selector) // a JSON string is a JavaScript string literal
	if err != nil {
		return nil, err
	}
	expr := fmt.Sprintf(`Array.from(document.querySelectorAll(%s)).map((tr) => Array.from(tr.cells).map((c) => ({
		text: c.textContent.replace(/\s+/g, ' ').trim(), value: c.dataset.value || '' })))`, sel)
	return Eval[[]Row](b, expr)
}

// SetViewport emulates a window of this size (a phone: 390x844).
func (b *Browser) SetViewport(width, height int64, mobile bool) error {
	b.mu.Lock()
	b.mobile = mobile
	b.mu.Unlock()
	return chromedp.Do(b.ctx, chromedp.EmulateViewport(width, height, b.viewportOpts(mobile)...))
}

func (b *Browser) viewportOpts(mobile bool) []chromedp.EmulateViewportOption {
	if mobile {
		return []chromedp.EmulateViewportOption{chromedp.EmulateMobile}
	}
	return nil
}

// Screenshot writes a PNG of the whole page to path. The window is made as
// tall as the page for the capture, so that sticky and fixed elements
// (a header, a tooltip) sit where a reader sees them, not where the scroll
// position left them; prepare, if given, runs at that size before the
// capture (to focus an element, say). The window's size is restored after.
func (b *Browser) Screenshot(path string, prepare ...chromedp.Action[chromedp.Void]) error {
	size, err := Eval[map[string]int64](b, `({w: window.innerWidth, h: window.innerHeight,
		full: Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)})`)
	if err != nil {
		return err
	}
	b.mu.Lock()
	mobile := b.mobile
	b.mu.Unlock()
	steps := append([]chromedp.Action[chromedp.Void]{
		chromedp.EmulateViewport(size["w"], size["full"], b.viewportOpts(mobile)...),
		chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`),
	}, prepare...)
	// Two animation frames: the page has laid out and painted at the new size.
	steps = append(steps, chromedp.Evaluate[chromedp.Void](`new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise))
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		return fmt.Errorf("prepare the screenshot: %w", err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return fmt.Errorf("take a screenshot: %w", err)
	}
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(size["w"], size["h"], b.viewportOpts(mobile)...)); err != nil {
		return fmt.Errorf("restore the window after the screenshot: %w", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return fmt.Errorf("write the screenshot: %w", err)
	}
	return nil
}

// OutputDir is where a test leaves files for people to look at
// (screenshots): t.ArtifactDir when go test runs with -artifacts, else a
// directory under the system's temporary directory that outlives the test.
// It logs the path.
func OutputDir(tb testing.TB) string {
	tb.Helper()
	if f := flag.Lookup("test.artifacts"); f != nil && f.Value.String() == "true" {
		if ad, ok := tb.(interface{ ArtifactDir() string }); ok {
			dir := ad.ArtifactDir()
			tb.Logf("test output in %s", dir)
			return dir
		}
	}
	name := strings.NewReplacer("/", "_", " ", "_", ":", "_").Replace(tb.Name())
	dir := filepath.Join(os.TempDir(), "tessera-test-output", name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatalf("create the test's output directory: %v", err)
	}
	tb.Logf("test output in %s", dir)
	return dir
}
