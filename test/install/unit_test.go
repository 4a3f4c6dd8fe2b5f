package install

import (
	"reflect"
	"testing"
)

func TestParseDenials(t *testing.T) {
	tests := []struct {
		name string
		log  string
		want []Denial
	}{
		{name: "client-go error in a klog line, quotes escaped",
			log:  `E1207 reflector.go:200] "Failed to watch" err="nodes \"n1\" is forbidden: User \"system:serviceaccount:kube-system:tessera-node-agent\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope"`,
			want: []Denial{{User: "system:serviceaccount:kube-system:tessera-node-agent", Verb: "patch", Resource: "nodes/status"}}},
		{name: "namespaced, named group, repeated once",
			log: "leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:kube-system:s\" cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\"\n" +
				"leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:kube-system:s\" cannot create resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\"",
			want: []Denial{{User: "system:serviceaccount:kube-system:s", Verb: "create", Resource: "leases", Group: "coordination.k8s.io", Namespace: "kube-system"}}},
		{name: "nothing forbidden", log: "I1207 started\nE1207 connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParseDenials(tt.log); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseDenials = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestEntrypoint(t *testing.T) {
	for image, want := range map[string]string{
		"ghcr.io/tessera-gpu/tessera-node-agent:0.1.0":     "tessera-node-agent",
		"localhost:5000/tessera-estimator":                 "tessera-estimator",
		"ghcr.io/tessera-gpu/tessera@sha256:0123456789abc": "tessera",
	} {
		if got := Entrypoint(image); got != want {
			t.Errorf("Entrypoint(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestOverrideFlags(t *testing.T) {
	argv := []string{"tessera-node-agent", "--config=/etc/tessera/config.yaml", "--health-addr=:8080", "--v=2"}
	got, overridden := overrideFlags(argv, map[string]string{"health-addr": "127.0.0.1:1", "kubeconfig": "/k", "b": "x"})
	want := []string{"tessera-node-agent", "--config=/etc/tessera/config.yaml", "--health-addr=127.0.0.1:1", "--v=2", "--b=x", "--kubeconfig=/k"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("argv %v, want %v", got, want)
	}
	if len(overridden) != 3 || overridden[0] != "--health-addr=127.0.0.1:1 (chart: --health-addr=:8080)" {
		t.Errorf("overridden %v", overridden)
	}
}

func TestMapPathsAndVars(t *testing.T) {
	mounts := [][2]string{{"/etc/tessera/member", "/tmp/m"}, {"/etc/tessera", "/tmp/c"}}
	for arg, want := range map[string]string{
		"--config=/etc/tessera/config.yaml":   "--config=/tmp/c/config.yaml",
		"--kubeconfig=/etc/tessera/member/kc": "--kubeconfig=/tmp/m/kc",
		"--other=/etc/tesseract/x":            "--other=/etc/tesseract/x",
		"--node-name=$(NODE_NAME)":            "--node-name=n1",
		"--unknown=$(MISSING)":                "--unknown=$(MISSING)",
	} {
		if got := mapPaths(expandVars(arg, map[string]string{"NODE_NAME": "n1"}), mounts); got != want {
			t.Errorf("%s -> %s, want %s", arg, got, want)
		}
	}
}
