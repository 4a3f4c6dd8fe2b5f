// Package promtest runs a real Prometheus (Debian's package, installed by
// test/tools/install-prometheus.sh) on 127.0.0.1 for tests, and asks its
// HTTP API what a dashboard would ask.
package promtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pollInterval is how often the waits ask Prometheus again.
const pollInterval = 250 * time.Millisecond

// Ensure returns the prometheus binary, installing Debian's package through
// test/tools/install-prometheus.sh when it is missing.
func Ensure(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("prometheus"); err == nil {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "..", "tools", "install-prometheus.sh")
	out, err := exec.Command("bash", script).CombinedOutput()
	if err != nil {
		t.Fatalf("prometheus is not installed and %s failed (run it as root, or test with -short to skip): %v\n%s", script, err, out)
	}
	p, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("%s succeeded but prometheus is not on PATH: %v", script, err)
	}
	return p
}

// Start runs Prometheus from bin on a free loopback port with its own
// storage and the given configuration file's content, and returns its
// base URL once it is ready. It is killed when the test ends, and its log
// is shown if the test failed.
func Start(ctx context.Context, t testing.TB, bin, config string) string {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeLoopbackAddr(ctx, t)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // only the process this test started
		<-exited
		_ = logFile.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("prometheus log:\n%s", log)
			}
		}
	})
	base := "http://" + addr
	for {
		select {
		case err := <-exited:
			exited <- err // for the cleanup
			log, _ := os.ReadFile(logFile.Name())
			t.Fatalf("prometheus exited: %v\n%s", err, log)
		case <-ctx.Done():
			t.Fatalf("prometheus on %s never became ready: %v", addr, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		if code, err := get(ctx, base+"/-/ready"); err == nil && code == http.StatusOK {
			return base
		}
	}
}

// FreeLoopbackAddr picks a free port on 127.0.0.1 for a server to take.
func FreeLoopbackAddr(ctx context.Context, t testing.TB) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func get(ctx context.Context, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// Sample is one series of an instant vector.
type Sample struct {
	Metric map[string]string
	Value  string
}

// WaitForSeries polls an instant query until it returns exactly one series
// (present) or none (absent).
func WaitForSeries(ctx context.Context, t testing.TB, api, query string, present bool) Sample {
	t.Helper()
	var last []Sample
	var lastErr error
	for {
		last, lastErr = Query(ctx, api, query)
		switch {
		case lastErr == nil && present && len(last) == 1:
			return last[0]
		case lastErr == nil && !present && len(last) == 0:
			return Sample{}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("query %s: want present=%v, last answer %+v (error %v)", query, present, last, lastErr)
		case <-time.After(pollInterval):
		}
	}
}

// Query runs an instant query and returns its vector.
func Query(ctx context.Context, api, query string) ([]Sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := call(ctx, api+"/api/v1/query?query="+url.QueryEscape(query), &data); err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result is a %s, not a vector", query, data.ResultType)
	}
	out := make([]Sample, 0, len(data.Result))
	for _, r := range data.Result {
		v, _ := r.Value[1].(string)
		out = append(out, Sample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// Target is one scrape target as /api/v1/targets reports it.
type Target struct {
	ScrapePool string            `json:"scrapePool"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
}

// WaitForTargetsUp waits until Prometheus has scraped all of its n active
// targets successfully at least once, and returns them.
func WaitForTargetsUp(ctx context.Context, t testing.TB, api string, n int) []Target {
	t.Helper()
	var last []Target
	var lastErr error
	for {
		var data struct {
			ActiveTargets []Target `json:"activeTargets"`
		}
		lastErr = call(ctx, api+"/api/v1/targets?state=active", &data)
		last = data.ActiveTargets
		up := 0
		for _, tg := range last {
			if tg.Health == "up" {
				up++
			}
		}
		if lastErr == nil && len(last) == n && up == n {
			return last
		}
		select {
		case <-ctx.Done():
			t.Fatalf("want %d targets up; last answer %s (error %v)", n, describeTargets(last), lastErr)
		case <-time.After(pollInterval):
		}
	}
}

func describeTargets(ts []Target) string {
	if len(ts) == 0 {
		return "no targets"
	}
	parts := make([]string, 0, len(ts))
	for _, tg := range ts {
		parts = append(parts, fmt.Sprintf("%s %s %s %q", tg.ScrapePool, tg.ScrapeURL, tg.Health, tg.LastError))
	}
	return strings.Join(parts, "; ")
}

// call GETs one API endpoint and decodes its data into out.
func call(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("decode answer of %s: %w", u, err)
	}
	if body.Status != "success" {
		return errors.New(body.Status + ": " + body.Error)
	}
	if err := json.Unmarshal(body.Data, out); err != nil {
		return fmt.Errorf("decode data of %s: %w", u, err)
	}
	return nil
}
