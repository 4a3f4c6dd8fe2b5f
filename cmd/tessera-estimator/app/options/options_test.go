package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func parse(t *testing.T, args ...string) *Options {
	t.Helper()
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return o
}

// TestKarmadaFlagsAreAccepted checks that every flag a
// karmada-scheduler-estimator Deployment passes is accepted with the same
// meaning and default, so the binary can replace it behind its Service.
func TestKarmadaFlagsAreAccepted(t *testing.T) {
	o := parse(t,
		"--kubeconfig=/etc/karmada/member1.kubeconfig", "--cluster-name=member1",
		"--grpc-auth-cert-file=/c.crt", "--grpc-auth-key-file=/c.key", "--grpc-client-ca-file=/ca.crt",
		"--insecure-skip-grpc-client-verify", "--metrics-bind-address=:8080", "--health-probe-bind-address=:10351",
		"--feature-gates=ResourceQuotaEstimate=false", "--kube-api-qps=30", "--kube-api-burst=40", "--parallelism=4",
	)
	k := o.Karmada
	if k.ServerPort != 10352 {
		t.Errorf("default --server-port = %d, want 10352", k.ServerPort)
	}
	if k.KubeConfig != "/etc/karmada/member1.kubeconfig" || k.ClusterName != "member1" || !k.InsecureSkipGrpcClientVerify ||
		k.GrpcAuthCertFile != "/c.crt" || k.GrpcAuthKeyFile != "/c.key" || k.GrpcClientCaFile != "/ca.crt" || k.Parallelism != 4 {
		t.Errorf("flags not read as Karmada reads them: %+v", k)
	}
	if _, errs := o.Validate(); len(errs) != 0 {
		t.Errorf("Validate: %v", errs)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("resources:\n  vgpu: example.com/vgpu\n  memory: example.com/vgpu-memory\n  cores: example.com/vgpu-cores\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("resources:\n  vgpu: nvidia.com/gpu\n  unknownField: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantErr  string
		wantVGPU string
	}{
		{name: "defaults with a cluster name", args: []string{"--cluster-name=m"}, wantVGPU: "tessera.io/vgpu"},
		{name: "config file", args: []string{"--cluster-name=m", "--config=" + good}, wantVGPU: "example.com/vgpu"},
		{name: "no cluster name", args: nil, wantErr: "clusterName cannot be empty"},
		{name: "port out of range", args: []string{"--cluster-name=m", "--server-port=70000"}, wantErr: "ServerPort"},
		{name: "negative parallelism", args: []string{"--cluster-name=m", "--parallelism=-1"}, wantErr: "Parallelism"},
		{name: "cert without key", args: []string{"--cluster-name=m", "--grpc-auth-cert-file=/c"}, wantErr: "go together"},
		{name: "bad metrics address", args: []string{"--cluster-name=m", "--metrics-bind-address=8080"}, wantErr: "MetricsBindAddress"},
		{name: "disabled health probe", args: []string{"--cluster-name=m", "--health-probe-bind-address=0"}, wantVGPU: "tessera.io/vgpu"},
		{name: "loopback gRPC address", args: []string{"--cluster-name=m", "--grpc-bind-address=127.0.0.1"}, wantVGPU: "tessera.io/vgpu"},
		{name: "gRPC address with a port", args: []string{"--cluster-name=m", "--grpc-bind-address=127.0.0.1:10352"}, wantErr: "GRPCBindAddress"},
		{name: "bind address", args: []string{"--cluster-name=m", "--bind-address=fd00::7"}, wantVGPU: "tessera.io/vgpu"},
		{name: "bind address with a port", args: []string{"--cluster-name=m", "--bind-address=10.0.0.7:8080"}, wantErr: "BindAddress"},
		{name: "zero probe interval", args: []string{"--cluster-name=m", "--api-probe-interval=0s"}, wantErr: "APIProbeInterval"},
		{name: "missing config file", args: []string{"--cluster-name=m", "--config=" + filepath.Join(dir, "none.yaml")}, wantErr: "none.yaml"},
		{name: "invalid config file", args: []string{"--cluster-name=m", "--config=" + bad}, wantErr: "unknownField"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, errs := parse(t, tt.args...).Validate()
			if tt.wantErr != "" {
				if len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tt.wantErr) {
					t.Fatalf("errors = %v, want one containing %q", errs, tt.wantErr)
				}
				return
			}
			if len(errs) != 0 {
				t.Fatalf("unexpected errors: %v", errs)
			}
			if cfg.Resources.VGPU != tt.wantVGPU {
				t.Errorf("vgpu resource = %q, want %q", cfg.Resources.VGPU, tt.wantVGPU)
			}
		})
	}
}

func TestGRPCAddress(t *testing.T) {
	for args, want := range map[string]string{"": ":10352", "127.0.0.1": "127.0.0.1:10352", "::1": "[::1]:10352"} {
		if got := parse(t, "--grpc-bind-address="+args).GRPCAddress(); got != want {
			t.Errorf("--grpc-bind-address=%q: listens on %q, want %q", args, got, want)
		}
	}
	// --bind-address places gRPC too, unless --grpc-bind-address says otherwise.
	if got := parse(t, "--bind-address=10.0.0.7").GRPCAddress(); got != "10.0.0.7:10352" {
		t.Errorf("--bind-address=10.0.0.7: gRPC listens on %q", got)
	}
	if got := parse(t, "--bind-address=10.0.0.7", "--grpc-bind-address=127.0.0.1").GRPCAddress(); got != "127.0.0.1:10352" {
		t.Errorf("--grpc-bind-address=127.0.0.1 with --bind-address: gRPC listens on %q", got)
	}
}

// TestClusterNameHelpNamesTheMetricLabel: the cluster label of the metrics
// comes from --cluster-name, and its help says so.
func TestClusterNameHelpNamesTheMetricLabel(t *testing.T) {
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	NewOptions().AddFlags(fs)
	f := fs.Lookup("cluster-name")
	if f == nil {
		t.Fatal("no --cluster-name flag")
	}
	if !strings.Contains(f.Usage, "cluster label") {
		t.Errorf("--cluster-name help %q does not mention the metrics' cluster label", f.Usage)
	}
}
