package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/tessera-gpu/tessera/cmd/tessera-estimator/app/options"
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

// TestListenAddrs: --bind-address places the gRPC server and the HTTP
// endpoints that give only a port; Karmada's flags keep an explicit host
// and "0" (disabled).
func TestListenAddrs(t *testing.T) {
	tests := []struct {
		name                  string
		args                  []string
		grpc, health, metrics string
	}{
		{"Karmada's defaults", []string{"--cluster-name=m"}, ":10352", ":10351", ":8080"},
		{"pod IP", []string{"--cluster-name=m", "--bind-address=10.0.0.7"}, "10.0.0.7:10352", "10.0.0.7:10351", "10.0.0.7:8080"},
		{"IPv6 pod IP", []string{"--cluster-name=m", "--bind-address=fd00::7", "--server-port=9000"}, "[fd00::7]:9000", "[fd00::7]:10351", "[fd00::7]:8080"},
		{"gRPC on its own address", []string{"--cluster-name=m", "--bind-address=10.0.0.7", "--grpc-bind-address=127.0.0.1"}, "127.0.0.1:10352", "10.0.0.7:10351", "10.0.0.7:8080"},
		{"explicit host and disabled metrics", []string{"--cluster-name=m", "--bind-address=10.0.0.7", "--health-probe-bind-address=127.0.0.1:10351", "--metrics-bind-address=0"},
			"10.0.0.7:10352", "127.0.0.1:10351", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := options.NewOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			opts.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if _, errs := opts.Validate(); len(errs) != 0 {
				t.Fatalf("Validate: %v", errs)
			}
			grpc, health, metrics := listenAddrs(opts)
			if grpc != tt.grpc || health != tt.health || metrics != tt.metrics {
				t.Errorf("listen on gRPC %q, health %q, metrics %q; want %q, %q, %q", grpc, health, metrics, tt.grpc, tt.health, tt.metrics)
			}
		})
	}
}
