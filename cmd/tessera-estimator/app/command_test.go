package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCommandRefusesInvalidFlags(t *testing.T) {
	cmd := NewCommand(context.Background())
	cmd.SetArgs([]string{"--server-port=10352"}) // no --cluster-name
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "clusterName") {
		t.Fatalf("Execute without --cluster-name: %v, want a clusterName error", err)
	}
}

func TestHTTPMuxes(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("m")) })
	tests := []struct {
		name           string
		health, metric string
		wantAddrs      int
		wantOn         map[string][]string // address -> paths served
	}{
		{name: "separate addresses", health: ":10351", metric: ":8080", wantAddrs: 2,
			wantOn: map[string][]string{":10351": {"/healthz"}, ":8080": {"/metrics"}}},
		{name: "one address serves both", health: ":9000", metric: ":9000", wantAddrs: 1,
			wantOn: map[string][]string{":9000": {"/healthz", "/metrics"}}},
		{name: "metrics disabled", health: ":10351", metric: "0", wantAddrs: 1,
			wantOn: map[string][]string{":10351": {"/healthz"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			muxes := httpMuxes(tt.health, tt.metric, metrics)
			if len(muxes) != tt.wantAddrs {
				t.Fatalf("%d addresses, want %d", len(muxes), tt.wantAddrs)
			}
			for addr, paths := range tt.wantOn {
				for _, path := range paths {
					rec := httptest.NewRecorder()
					muxes[addr].ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
					if rec.Code != http.StatusOK {
						t.Errorf("%s%s = %d, want 200", addr, path, rec.Code)
					}
				}
			}
		})
	}
}
