package app

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealthHandler(t *testing.T) {
	ok := func() error { return nil }
	notYet := func(what string) func() error { return func() error { return errors.New(what) } }
	type answer struct {
		code int
		// body are substrings the answer must contain, absent those it
		// must not (checks that passed).
		body, absent []string
	}
	tests := []struct {
		name       string
		registered func() error
		published  func() error
		healthz    answer
		readyz     answer
	}{
		{
			name:       "starting: nothing done",
			registered: notYet("not registered"), published: notYet("not published"),
			healthz: answer{code: http.StatusServiceUnavailable, body: []string{"device-plugin: not registered"}, absent: []string{"node-inventory"}},
			readyz:  answer{code: http.StatusServiceUnavailable, body: []string{"device-plugin: not registered", "node-inventory: not published"}},
		},
		{
			// The API server is down: alive, not ready.
			name:       "registered, node not published",
			registered: ok, published: notYet("not published"),
			healthz: answer{code: http.StatusOK, body: []string{"ok"}, absent: []string{"node-inventory"}},
			readyz:  answer{code: http.StatusServiceUnavailable, body: []string{"node-inventory: not published"}, absent: []string{"device-plugin"}},
		},
		{
			name:       "kubelet restarted: registration pending",
			registered: notYet("not registered"), published: ok,
			healthz: answer{code: http.StatusServiceUnavailable, body: []string{"device-plugin: not registered"}},
			readyz:  answer{code: http.StatusServiceUnavailable, body: []string{"device-plugin: not registered"}, absent: []string{"node-inventory"}},
		},
		{
			name:       "registered and published",
			registered: ok, published: ok,
			healthz: answer{code: http.StatusOK, body: []string{"ok"}},
			readyz:  answer{code: http.StatusOK, body: []string{"ok"}},
		},
	}
	for _, tt := range tests {
		registered := healthCheck{"device-plugin", tt.registered}
		handler := healthHandler([]healthCheck{registered}, []healthCheck{registered, {"node-inventory", tt.published}})
		for path, want := range map[string]answer{"/healthz": tt.healthz, "/readyz": tt.readyz} {
			t.Run(tt.name+path, func(t *testing.T) {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != want.code {
					t.Errorf("code %d, want %d", rec.Code, want.code)
				}
				for _, s := range want.body {
					if !strings.Contains(rec.Body.String(), s) {
						t.Errorf("body %q does not contain %q", rec.Body.String(), s)
					}
				}
				for _, s := range want.absent {
					if strings.Contains(rec.Body.String(), s) {
						t.Errorf("body %q reports %s, which is not checked or passed", rec.Body.String(), s)
					}
				}
			})
		}
	}
}

type fakeRegistration bool

func (f fakeRegistration) Registered() bool { return bool(f) }

func TestPluginRegisteredCheck(t *testing.T) {
	if err := pluginRegisteredCheck(fakeRegistration(false))(); err == nil || !strings.Contains(err.Error(), "not registered with the kubelet") {
		t.Errorf("unregistered plugin: %v, want an error saying it is not registered", err)
	}
	if err := pluginRegisteredCheck(fakeRegistration(true))(); err != nil {
		t.Errorf("registered plugin failed the check: %v", err)
	}
}

func TestNodePublishedCheck(t *testing.T) {
	published := false
	check := nodePublishedCheck("gpu-1", func() bool { return published })
	if err := check(); err == nil || !strings.Contains(err.Error(), "node gpu-1") {
		t.Errorf("unpublished: %v, want an error naming the node", err)
	}
	published = true
	if err := check(); err != nil {
		t.Errorf("published: %v", err)
	}
}

func TestRunChecksNamesEveryFailure(t *testing.T) {
	err := runChecks([]healthCheck{
		{"a", func() error { return errors.New("broken") }},
		{"b", func() error { return nil }},
		{"c", func() error { return errors.New("late") }},
	})
	if err == nil || !strings.Contains(err.Error(), "a: broken") || !strings.Contains(err.Error(), "c: late") || strings.Contains(err.Error(), "b:") {
		t.Errorf("runChecks = %v, want a and c named, b not", err)
	}
	if err := runChecks([]healthCheck{{"ok", func() error { return nil }}}); err != nil {
		t.Errorf("passing checks: %v", err)
	}
}
