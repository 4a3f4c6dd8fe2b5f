package app

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/pkg/fleet/fleettest"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// newFleet serves three members: member-a fragmented (two 80 GiB GPUs with
// 32 GiB free each), member-b one empty GPU and a waiting pod, member-c
// without Tessera; member-d is down.
func newFleet(t *testing.T) (*fleettest.FakeKarmada, string) {
	t.Helper()
	k := fleettest.NewFakeKarmada(t)
	a0, a1 := testcluster.GPU("a", 0), testcluster.GPU("a", 1)
	k.SetMember(fleettest.ReadyCluster("member-a"), []*corev1.Node{node("a", a0, a1)}, []*corev1.Pod{
		testcluster.GPUPod("fill-0", "a", 100, 1<<30, testcluster.Share{GPU: a0, MemoryMiB: 48 << 10}),
		testcluster.GPUPod("fill-1", "a", 100, 1<<30, testcluster.Share{GPU: a1, MemoryMiB: 48 << 10, Cores: 20}),
	})
	k.SetMember(fleettest.ReadyCluster("member-b"), []*corev1.Node{node("b", testcluster.GPU("b", 0))}, nil)
	k.SetMember(fleettest.ReadyCluster("member-c"), []*corev1.Node{node("c")}, nil)
	k.SetMember(fleettest.ReadyCluster("member-d"), nil, nil)
	k.SetDown("member-d", http.StatusServiceUnavailable)
	return k, k.Kubeconfig(t.TempDir())
}

func node(name string, gpus ...vgpu.GPU) *corev1.Node {
	return testcluster.Node(testcluster.NodeSpec{Name: name, MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110, GPUs: gpus})
}

// run runs the command as a user would and returns its exit code and output.
func run(t *testing.T, program string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(context.Background(), program, args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestFleetTable(t *testing.T) {
	_, kubeconfig := newFleet(t)
	code, out, errOut := run(t, "tessera", "fleet", "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"CLUSTER", "LARGEST FREE GiB",
		"member-a  Ready", "64/160", // 32 GiB free on each of two 80 GiB GPUs
		"member-b  Ready",
		"member-c  NoTessera",
		"member-d  Unreachable",
		"TOTAL",
		"member-c: no node publishes a Tessera GPU inventory",
		"member-d: unreachable:",
		"connection refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	code, wide, _ := run(t, "tessera", "fleet", "-o", "wide", "--kubeconfig", kubeconfig)
	if code != 0 || !strings.Contains(wide, "a/1") || !strings.Contains(wide, "default/fill-1 (48 GiB)") {
		t.Errorf("-o wide has no GPU rows with holders:\n%s", wide)
	}
}

func TestFleetJSONAndSelection(t *testing.T) {
	_, kubeconfig := newFleet(t)
	code, out, errOut := run(t, "tessera", "fleet", "-o", "json", "--cluster", "member-a", "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var f fleet.Fleet
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("-o json is not the fleet: %v\n%s", err, out)
	}
	if len(f.Clusters) != 1 || f.Clusters[0].Models[0].LargestFreeMiB != 32<<10 || len(f.Clusters[0].Pods) != 2 {
		t.Errorf("fleet %+v", f)
	}
	code, out, _ = run(t, "tessera", "fleet", "-o", "yaml", "--cluster", "member-b", "--kubeconfig", kubeconfig)
	if code != 0 || !strings.Contains(out, "name: member-b") {
		t.Errorf("-o yaml: %d\n%s", code, out)
	}
}

func TestFit(t *testing.T) {
	_, kubeconfig := newFleet(t)
	code, out, errOut := run(t, "tessera", "fit", "--vgpu", "1", "--memory", "40Gi", "--replicas", "2", "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// member-a has 64 GiB free but no GPU with 40 GiB; member-b one empty GPU.
	for _, want := range []string{"tessera.io/vgpu=1 tessera.io/vgpu-memory=40960", "member-a  0 ", "member-b  2 ", "b: GPU 0 (40 GiB)", "2 replicas fit"} {
		if !strings.Contains(out, want) {
			t.Errorf("fit table lacks %q:\n%s", want, out)
		}
	}
	workload := filepath.Join(t.TempDir(), "deploy.yaml")
	deploy := `apiVersion: apps/v1
kind: Deployment
metadata: {name: big}
spec:
  replicas: 5
  selector: {matchLabels: {app: big}}
  template:
    metadata: {labels: {app: big}}
    spec:
      containers:
      - name: main
        image: x
        resources: {limits: {tessera.io/vgpu: 1, tessera.io/vgpu-memory: 16384}}
`
	if err := os.WriteFile(workload, []byte(deploy), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "tessera", "fit", "-f", workload, "-o", "json", "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("fit -f: exit %d: %s", code, errOut)
	}
	var res fleet.FitResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("fit -o json: %v\n%s", err, out)
	}
	// 16 GiB replicas: member-a 2 per GPU (32 GiB free each), member-b 5 on 80 GiB.
	if res.Replicas != 5 || res.Tessera != 9 || res.Clusters[0].Tessera != 4 || res.Clusters[1].Tessera != 5 {
		t.Errorf("fit -f: %+v", res)
	}
}

func TestPods(t *testing.T) {
	_, kubeconfig := newFleet(t)
	code, out, errOut := run(t, "tessera", "pods", "--kubeconfig", kubeconfig)
	if code != 0 || !strings.Contains(out, "fill-0") || !strings.Contains(out, "GPU-a-1") || !strings.Contains(out, "member-d: unreachable") {
		t.Errorf("pods: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "tessera", "pods", "-n", "elsewhere", "-o", "json", "--kubeconfig", kubeconfig)
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("pods -n elsewhere: %d %q", code, out)
	}
}

// TestBadInput: every mistake is one clear line on stderr and exit 1.
func TestBadInput(t *testing.T) {
	k, kubeconfig := newFleet(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"fit without a request", []string{"fit"}, "say what one replica asks for"},
		{"fit with both", []string{"fit", "--vgpu", "1", "-f", "x.yaml"}, "either -f or"},
		{"memory not in MiB", []string{"fit", "--memory", "40G"}, "whole number of MiB"},
		{"cores over the GPUs", []string{"fit", "--vgpu", "1", "--cores", "150"}, "cores must be between"},
		{"missing workload file", []string{"fit", "-f", "/nonexistent.yaml"}, "no such file"},
		{"bad output", []string{"fleet", "-o", "table"}, `-o "table"`},
		{"wide for fit", []string{"fit", "--vgpu", "1", "-o", "wide"}, `-o "wide"`},
		{"arguments", []string{"fleet", "member-a"}, "takes no arguments"},
		{"unknown flag", []string{"fleet", "--nodes"}, "unknown flag"},
		{"unknown cluster", []string{"fleet", "--cluster", "member-x"}, "no member cluster named [member-x]"},
		{"bad timeout", []string{"fleet", "--timeout", "0s"}, "--timeout must be positive"},
		{"no kubeconfig", []string{"fleet", "--kubeconfig", "/nonexistent/config"}, "load kubeconfig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--kubeconfig") {
				args = append(args, "--kubeconfig", kubeconfig)
			}
			code, _, errOut := run(t, "tessera", args...)
			if code != 1 || !strings.HasPrefix(errOut, "error: ") || !strings.Contains(errOut, tc.want) ||
				strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "goroutine") {
				t.Errorf("exit %d, stderr %q; want one line with %q", code, errOut, tc.want)
			}
		})
	}
	k.Server.Close()
	code, _, errOut := run(t, "tessera", "fleet", "--kubeconfig", kubeconfig)
	if code != 1 || !strings.Contains(errOut, "list member clusters on Karmada") {
		t.Errorf("Karmada down: exit %d, %q", code, errOut)
	}
}

func TestKubectlPluginName(t *testing.T) {
	code, out, _ := run(t, "kubectl-tessera", "--help")
	if code != 0 || !strings.Contains(out, "kubectl tessera [command]") {
		t.Errorf("help as a kubectl plugin:\n%s", out)
	}
}
