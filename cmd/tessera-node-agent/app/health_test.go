package app

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/deviceplugin"
)

func TestHealthHandler(t *testing.T) {
	ok := func() error { return nil }
	notYet := func(what string) func() error { return func() error { return errors.New(what) } }
	tests := []struct {
		name     string
		checks   []healthCheck
		wantCode int
		wantBody []string
		// wantAbsent are checks that passed and must not be reported.
		wantAbsent []string
	}{
		{
			name:     "starting: nothing done",
			checks:   []healthCheck{{"device-plugin", notYet("not registered")}, {"node-inventory", notYet("not published")}},
			wantCode: http.StatusServiceUnavailable,
			wantBody: []string{"device-plugin: not registered", "node-inventory: not published"},
		},
		{
			name:       "registered, node not yet published",
			checks:     []healthCheck{{"device-plugin", ok}, {"node-inventory", notYet("not published")}},
			wantCode:   http.StatusServiceUnavailable,
			wantBody:   []string{"node-inventory: not published"},
			wantAbsent: []string{"device-plugin"},
		},
		{
			name:     "registered and published",
			checks:   []healthCheck{{"device-plugin", ok}, {"node-inventory", ok}},
			wantCode: http.StatusOK,
			wantBody: []string{"ok"},
		},
	}
	for _, tt := range tests {
		for _, path := range []string{"/healthz", "/readyz"} {
			t.Run(tt.name+path, func(t *testing.T) {
				rec := httptest.NewRecorder()
				healthHandler(tt.checks).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != tt.wantCode {
					t.Errorf("code %d, want %d", rec.Code, tt.wantCode)
				}
				for _, want := range tt.wantBody {
					if !strings.Contains(rec.Body.String(), want) {
						t.Errorf("body %q does not contain %q", rec.Body.String(), want)
					}
				}
				for _, absent := range tt.wantAbsent {
					if strings.Contains(rec.Body.String(), absent) {
						t.Errorf("body %q reports %s, which passed", rec.Body.String(), absent)
					}
				}
			})
		}
	}
}

type fakeRegistration bool

func (f fakeRegistration) Registered() bool { return bool(f) }

func TestPluginRegisteredCheck(t *testing.T) {
	watched := false
	isWatched := func() bool { return watched }
	// Without a reporter the check asks whether a kubelet watches.
	check := pluginRegisteredCheck(struct{}{}, isWatched)
	if err := check(); err == nil || !strings.Contains(err.Error(), "no kubelet is watching") {
		t.Errorf("unwatched: %v, want an error saying no kubelet watches", err)
	}
	watched = true
	if err := check(); err != nil {
		t.Errorf("watched: %v", err)
	}
	// A reporter is believed over the watch.
	if err := pluginRegisteredCheck(fakeRegistration(false), isWatched)(); err == nil {
		t.Error("a plugin that says it is not registered passed the check")
	}
	watched = false
	if err := pluginRegisteredCheck(fakeRegistration(true), isWatched)(); err != nil {
		t.Errorf("a registered plugin failed the check: %v", err)
	}
}

// fakeSource is a DeviceSource that counts unsubscriptions.
type fakeSource struct {
	deviceplugin.DeviceSource
	unsubscribed int
}

func (f *fakeSource) Subscribe() (<-chan struct{}, func()) {
	return make(chan struct{}), func() { f.unsubscribed++ }
}

func TestWatchedDevicesCountsOpenSubscriptions(t *testing.T) {
	src := &fakeSource{}
	w := &watchedDevices{DeviceSource: src}
	if w.watched() {
		t.Fatal("watched before any subscription")
	}
	_, first := w.Subscribe()
	_, second := w.Subscribe()
	first()
	first() // a second call must not count twice
	if !w.watched() {
		t.Error("not watched while one subscription is open")
	}
	second()
	if w.watched() {
		t.Error("still watched after every subscription ended")
	}
	if src.unsubscribed != 2 {
		t.Errorf("the source saw %d unsubscriptions, want 2", src.unsubscribed)
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
