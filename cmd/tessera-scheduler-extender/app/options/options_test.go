package options

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "defaults"},
		{name: "test addresses", args: []string{"--bind-address=127.0.0.1:0", "--metrics-bind-address=0", "--health-probe-bind-address=0", "--leader-elect=false"}},
		{name: "bind address without port", args: []string{"--bind-address=127.0.0.1"}, wantErr: "--bind-address"},
		{name: "bind address cannot be disabled", args: []string{"--bind-address=0"}, wantErr: "--bind-address"},
		{name: "metrics address", args: []string{"--metrics-bind-address=localhost"}, wantErr: "--metrics-bind-address"},
		{name: "qps", args: []string{"--kube-api-qps=0"}, wantErr: "--kube-api-qps"},
		{name: "lease shorter than renew", args: []string{"--leader-elect-lease-duration=5s"}, wantErr: "must be longer than --leader-elect-renew-deadline"},
		{name: "renew shorter than retry", args: []string{"--leader-elect-retry-period=11s"}, wantErr: "must be longer than --leader-elect-retry-period"},
		{name: "no lease name", args: []string{"--leader-elect-resource-name="}, wantErr: "--leader-elect-resource-name"},
		{name: "filter bind wait off", args: []string{"--filter-bind-wait=0"}},
		{name: "negative filter bind wait", args: []string{"--filter-bind-wait=-1s"}, wantErr: "--filter-bind-wait"},
		{name: "filter bind wait past the scheduler's timeout", args: []string{"--filter-bind-wait=20s"}, wantErr: "--filter-bind-wait"},
		{name: "lease checks are off without election", args: []string{"--leader-elect=false", "--leader-elect-resource-name="}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := New()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
