package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// wantErr lists substrings of the error; empty means valid.
		wantErr []string
	}{
		{name: "node name and defaults", args: []string{"--node-name=gpu-1"}},
		{name: "loopback health port 0", args: []string{"--node-name=gpu-1", "--health-addr=127.0.0.1:0"}},
		{name: "health disabled", args: []string{"--node-name=gpu-1", "--health-addr=0"}},
		{name: "no node name", args: []string{"--node-name="}, wantErr: []string{"--node-name is empty and $NODE_NAME is not set"}},
		{name: "invalid node name", args: []string{"--node-name=GPU_1"}, wantErr: []string{`--node-name "GPU_1" is not a valid node name`}},
		{name: "health address without port", args: []string{"--node-name=n", "--health-addr=localhost"}, wantErr: []string{`--health-addr "localhost"`}},
		{name: "health address with empty port", args: []string{"--node-name=n", "--health-addr=127.0.0.1:"}, wantErr: []string{"has no port"}},
		{name: "metrics disabled", args: []string{"--node-name=gpu-1", "--metrics-addr=0"}},
		{name: "loopback metrics port 0", args: []string{"--node-name=gpu-1", "--metrics-addr=127.0.0.1:0"}},
		{name: "metrics address without port", args: []string{"--node-name=n", "--metrics-addr=localhost"}, wantErr: []string{`--metrics-addr "localhost"`}},
		{name: "metrics address with empty port", args: []string{"--node-name=n", "--metrics-addr=:"}, wantErr: []string{`--metrics-addr ":" has no port`}},
		{name: "bind address IPv4", args: []string{"--node-name=n", "--bind-address=10.0.0.7"}},
		{name: "bind address IPv6", args: []string{"--node-name=n", "--bind-address=fd00::7"}},
		{name: "bind address with a port", args: []string{"--node-name=n", "--bind-address=10.0.0.7:8080"}, wantErr: []string{`--bind-address "10.0.0.7:8080" is not an IP address`}},
		{name: "bind address unexpanded", args: []string{"--node-name=n", "--bind-address=$(POD_IP)"}, wantErr: []string{`--bind-address "$(POD_IP)"`}},
		{name: "zero qps", args: []string{"--node-name=n", "--kube-api-qps=0"}, wantErr: []string{"--kube-api-qps 0"}},
		{
			name:    "every problem at once",
			args:    []string{"--node-name=", "--health-addr=x", "--metrics-addr=y", "--kube-api-burst=-1"},
			wantErr: []string{"--node-name", "--health-addr", "--metrics-addr", "--kube-api-burst"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(NodeNameEnv, "")
			o := New()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatalf("parse %v: %v", tt.args, err)
			}
			err := o.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %v", tt.args)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNodeNameDefaultsToEnvironment(t *testing.T) {
	t.Setenv(NodeNameEnv, "from-env")
	o := New()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if o.NodeName != "from-env" {
		t.Errorf("node name %q, want it from $%s", o.NodeName, NodeNameEnv)
	}
	if err := fs.Parse([]string{"--node-name=from-flag"}); err != nil {
		t.Fatal(err)
	}
	if o.NodeName != "from-flag" {
		t.Errorf("node name %q, want the flag to win", o.NodeName)
	}
}

func TestBadFlagValueIsAParseError(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.SetOutput(&strings.Builder{})
	New().AddFlags(fs)
	err := fs.Parse([]string{"--kube-api-qps=fast"})
	if err == nil || !strings.Contains(err.Error(), "kube-api-qps") {
		t.Fatalf("parse error = %v, want one naming --kube-api-qps", err)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	for path, content := range map[string]string{
		good: "node: {splitCount: 4, gpuBackend: mock, mock: {machine: dgxa100}}\n",
		bad:  "node: {splitCont: 4}\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		file    string
		wantErr string
		split   int
	}{
		{name: "no file gives the defaults", file: "", split: 10},
		{name: "good file", file: good, split: 4},
		{name: "misspelt field names the file and the field", file: bad, wantErr: "config " + bad + `: decode: unknown field "node.splitCont"`},
		{name: "missing file names the file", file: filepath.Join(dir, "nope.yaml"), wantErr: "read config " + filepath.Join(dir, "nope.yaml")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New()
			o.ConfigFile = tt.file
			cfg, err := o.LoadConfig()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("LoadConfig error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if cfg.Node.SplitCount != tt.split {
				t.Errorf("splitCount = %d, want %d", cfg.Node.SplitCount, tt.split)
			}
		})
	}
}
