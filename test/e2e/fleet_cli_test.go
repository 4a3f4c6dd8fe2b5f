package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// TestFleetCLI runs the tessera command as a subprocess against the real
// Karmada API server of the headline environment (member-a fragmented,
// member-b with a small pod and a pod that cannot fit), and compares what
// it prints with the truth read straight from the members, and its fit
// with both estimators. Then member-b is stopped: the table still prints,
// with member-b marked unreachable.
func TestFleetCLI(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	e := startHeadline(ctx, t, env.EstimatorTessera)
	bin, err := env.BuildCLI(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	names := e.Config().Resources
	idle := e.Member(env.IdleMember)
	small := env.GPUPod(env.HeadlineNamespace, "small", "small", env.GPURequest{GPUs: 1, MemoryMiB: 16 << 10, Cores: 30}, names)
	huge := env.GPUPod(env.HeadlineNamespace, "huge", "huge", env.GPURequest{GPUs: 1, MemoryMiB: 120 << 10}, names)
	for _, p := range []*corev1.Pod{small, huge} {
		if _, err := idle.Client().CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitReplicas(ctx, t, e, env.IdleMember, "small", 1, 0)
	waitReplicas(ctx, t, e, env.IdleMember, "huge", 0, 1)
	for _, m := range []string{env.BusyMember, env.IdleMember} {
		if err := e.WaitClusterSummary(ctx, m, summaryTimeout); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("fleet -o json is the members' truth", func(t *testing.T) {
		f := runFleetJSON(ctx, t, e, bin)
		for _, c := range f.Clusters {
			checkClusterTruth(ctx, t, e, c)
		}
		if len(f.Clusters) != 2 || len(f.Totals) != 2 {
			t.Errorf("clusters %d, totals %+v; want 2 clusters of 2 models", len(f.Clusters), f.Totals)
		}
	})
	t.Run("fit equals both estimators", func(t *testing.T) { checkFitAgainstEstimators(ctx, t, e, bin) })
	t.Run("fit -f a workload file", func(t *testing.T) { checkFitFile(ctx, t, e, bin) })
	t.Run("pods", func(t *testing.T) { checkPodsCLI(ctx, t, e, bin) })
	t.Run("a stopped member is marked, the rest still prints", func(t *testing.T) {
		idle.Cluster().Stop()
		out, err := e.RunCLI(ctx, bin, "fleet", "--timeout", "10s")
		if err != nil {
			t.Fatalf("fleet with %s stopped: %v", env.IdleMember, err)
		}
		t.Logf("tessera fleet with %s stopped:\n%s", env.IdleMember, out)
		for _, want := range []string{env.BusyMember + "  Ready", env.IdleMember + "  Unreachable", env.IdleMember + ": unreachable: "} {
			if !strings.Contains(string(out), want) {
				t.Errorf("table lacks %q", want)
			}
		}
		f := runFleetJSON(ctx, t, e, bin)
		if c := f.Clusters[1]; c.Reachable || c.Error == "" {
			t.Errorf("%s: reachable %v, error %q", c.Name, c.Reachable, c.Error)
		}
		checkClusterTruth(ctx, t, e, f.Clusters[0])
	})
}

func runFleetJSON(ctx context.Context, t *testing.T, e *env.Env, bin string) fleet.Fleet {
	t.Helper()
	out, err := e.RunCLI(ctx, bin, "fleet", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var f fleet.Fleet
	if err := json.Unmarshal(out, &f); err != nil {
		t.Fatalf("decode tessera fleet -o json: %v\n%s", err, out)
	}
	return f
}

// checkClusterTruth compares one cluster of the CLI's JSON with the GPUs
// the test reads from the member itself (env.GPUViews, the test's own
// reading of Nodes and pods) and with its pods.
func checkClusterTruth(ctx context.Context, t *testing.T, e *env.Env, c fleet.Cluster) {
	t.Helper()
	m := e.Member(c.Name)
	views, err := m.GPUViews(ctx, e.Config().Keys())
	if err != nil {
		t.Fatal(err)
	}
	if !c.Reachable || !c.Tessera || !c.Ready {
		t.Errorf("%s: reachable %v, tessera %v, ready %v (%s)", c.Name, c.Reachable, c.Tessera, c.Ready, c.Error)
	}
	got := map[string]fleet.GPU{}
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			got[n.Name+"/"+g.UUID] = g
		}
	}
	want := map[string]*fleet.ModelSummary{}
	for _, v := range views {
		g, ok := got[v.Node+"/"+v.UUID]
		free := v.Free()
		if !ok || g.Free != (fleet.Usage{Slots: free.Slots, MemoryMiB: free.MemoryMiB, Cores: free.Cores}) || g.Healthy != v.Healthy {
			t.Errorf("%s GPU %s on %s: CLI says %+v, the member %+v", c.Name, v.UUID, v.Node, g, v.DeviceState)
		}
		s := want[v.Model]
		if s == nil {
			s = &fleet.ModelSummary{Cluster: c.Name, Model: v.Model}
			want[v.Model] = s
		}
		s.GPUs++
		s.MemoryMiB.Total += v.MemoryMiB
		if v.Healthy {
			s.HealthyGPUs++
			s.MemoryMiB.Free += free.MemoryMiB
			s.Slots.Free += int64(free.Slots)
			if free.Slots > 0 {
				s.LargestFreeMiB = max(s.LargestFreeMiB, free.MemoryMiB)
			}
		}
	}
	if len(got) != len(views) {
		t.Errorf("%s: CLI shows %d GPUs, the member has %d", c.Name, len(got), len(views))
	}
	for _, s := range c.Models {
		w := want[s.Model]
		if w == nil || s.GPUs != w.GPUs || s.HealthyGPUs != w.HealthyGPUs || s.MemoryMiB != w.MemoryMiB ||
			s.Slots.Free != w.Slots.Free || s.LargestFreeMiB != w.LargestFreeMiB {
			t.Errorf("%s model %s: CLI %+v, member %+v", c.Name, s.Model, s, w)
		}
	}
	t.Logf("%s: %d GPUs, models %+v", c.Name, len(views), c.Models)
}

// checkFitAgainstEstimators: for several shapes, `tessera fit -o json`
// gives each member exactly what its Tessera estimator answers over gRPC
// and what Karmada's general estimator computes on its Cluster.
func checkFitAgainstEstimators(ctx context.Context, t *testing.T, e *env.Env, bin string) {
	shapes := []env.GPURequest{
		{GPUs: 1, MemoryMiB: 40 << 10},
		{GPUs: 1, MemoryMiB: 16 << 10},
		{GPUs: 1, MemoryMiB: 32 << 10, Cores: 50},
		{GPUs: 2, MemoryMiB: 40 << 10},
		{GPUs: 1},
	}
	for _, s := range shapes {
		args := []string{"fit", "-o", "json", "--vgpu", fmt.Sprint(s.GPUs)}
		if s.MemoryMiB > 0 {
			args = append(args, "--memory", fmt.Sprintf("%dMi", s.MemoryMiB))
		}
		if s.Cores > 0 {
			args = append(args, "--cores", fmt.Sprint(s.Cores))
		}
		out, err := e.RunCLI(ctx, bin, args...)
		if err != nil {
			t.Fatal(err)
		}
		var res fleet.FitResult
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("decode fit: %v\n%s", err, out)
		}
		for _, a := range res.Clusters {
			est, err := e.Estimates(ctx, a.Cluster, s.Resources(e.Config().Resources))
			if err != nil || est.TesseraErr != nil {
				t.Fatalf("estimates for %s: %v %v", a.Cluster, err, est.TesseraErr)
			}
			if a.Tessera != est.Tessera || a.Karmada != est.Stock || a.Scheduler != est.Used {
				t.Errorf("%+v in %s: CLI tessera %d karmada %d scheduler %d; estimators over gRPC %d, general %d, used %d",
					s, a.Cluster, a.Tessera, a.Karmada, a.Scheduler, est.Tessera, est.Stock, est.Used)
			}
			t.Logf("%+v in %s: tessera %d, karmada general %d, first %+v", s, a.Cluster, a.Tessera, a.Karmada, a.First)
		}
	}
}

// inferenceYAML is the headline workload as a user writes it.
const inferenceYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: inference
  namespace: default
spec:
  replicas: 4
  selector:
    matchLabels: {app: inference}
  template:
    metadata:
      labels: {app: inference}
    spec:
      containers:
      - name: main
        image: example.invalid/cuda-app:never-pulled
        resources:
          limits:
            tessera.io/vgpu: 1
            tessera.io/vgpu-memory: 40960
          requests:
            tessera.io/vgpu: 1
            tessera.io/vgpu-memory: 40960
`

// checkFitFile: the headline Deployment, written as a user would, read by
// `tessera fit -f`: 0 fit in the fragmented member, 3 beside the small pod
// in the idle one, and it says 4 do not fit.
func checkFitFile(ctx context.Context, t *testing.T, e *env.Env, bin string) {
	path := filepath.Join(t.TempDir(), "inference.yaml")
	if err := os.WriteFile(path, []byte(inferenceYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := e.RunCLI(ctx, bin, "fit", "-f", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tessera fit -f:\n%s", out)
	for _, want := range []string{env.BusyMember + "  0 ", env.IdleMember + "  3 ", "4 replicas do NOT fit: only 3 do"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("fit -f lacks %q", want)
		}
	}
}

// checkPodsCLI: `tessera pods` lists the fillers, the small pod on its GPU
// with its limits, and the huge pod waiting.
func checkPodsCLI(ctx context.Context, t *testing.T, e *env.Env, bin string) {
	var pods []fleet.Pod
	// The node agents report observed use every 2 s here: wait for the
	// small pod's first report.
	err := env.Eventually(ctx, time.Minute, "the small pod's observed use to be reported", func(ctx context.Context) (bool, string, error) {
		out, err := e.RunCLI(ctx, bin, "pods", "-o", "json")
		if err != nil {
			return false, err.Error(), nil
		}
		pods = nil
		if err := json.Unmarshal(out, &pods); err != nil {
			return false, "", fmt.Errorf("decode pods: %w\n%s", err, out)
		}
		for _, p := range pods {
			if p.Name == "small" && len(p.Containers) == 1 && p.Containers[0].UsedMemoryMiB != nil {
				return true, "", nil
			}
		}
		return false, "no report for small yet", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	table, err := e.RunCLI(ctx, bin, "pods")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tessera pods:\n%s", table)
	if !strings.Contains(string(table), env.IdleMember+": default/huge waits: ") {
		t.Errorf("tessera pods does not say why huge waits")
	}
	byName := map[string]fleet.Pod{}
	for _, p := range pods {
		byName[p.Cluster+"/"+p.Name] = p
	}
	fillers, err := e.Member(env.BusyMember).Replicas(ctx, env.HeadlineNamespace, env.FillerApp, e.Config().Keys())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fillers {
		p, ok := byName[env.BusyMember+"/"+r.Name]
		if !ok || p.Node != r.Node || len(p.Containers) != 1 ||
			!slices.Equal(p.Containers[0].GPUs, []string{r.Assignment.Containers[0].Devices[0].UUID}) {
			t.Errorf("filler %s: CLI %+v, member %+v", r.Name, p, r)
		}
	}
	small := byName[env.IdleMember+"/small"]
	if small.Node == "" || small.Waiting || len(small.Containers) != 1 || small.Containers[0].MemoryMiB != 16<<10 || small.Containers[0].Cores != 30 {
		t.Errorf("small: %+v", small)
	}
	// The node agent reports observed use from the container's usage
	// region; no CUDA process runs here, so it holds nothing yet.
	if u := small.Containers[0].UsedMemoryMiB; u == nil || *u != 0 {
		t.Errorf("small: observed use %v, want 0 MiB reported by its node agent", u)
	}
	huge := byName[env.IdleMember+"/huge"]
	if !huge.Waiting || huge.Containers[0].MemoryMiB != 120<<10 {
		t.Errorf("huge: %+v", huge)
	}
	if len(pods) != len(fillers)+2 {
		t.Errorf("CLI lists %d pods, want %d fillers and 2", len(pods), len(fillers))
	}
}
