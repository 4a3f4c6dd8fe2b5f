package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// hamiExpectation is a HAMi example's tessera.test/expect annotation: the
// per-GPU limits HAMi gives its container, or the key Tessera refuses.
type hamiExpectation struct {
	GPUs          int    `json:"gpus"`
	MemoryMiB     int64  `json:"memoryMiB"`
	MemoryPercent int64  `json:"memoryPercent"`
	Cores         int    `json:"cores"`
	Model         string `json:"model"`
	Unsupported   string `json:"unsupported"`
}

// hamiExample is one of HAMi's documented pods, as a one-replica
// Deployment on Karmada (its pod template unchanged).
type hamiExample struct {
	file   string
	pod    *corev1.Pod
	expect hamiExpectation
}

func readHAMiExamples(t *testing.T) []hamiExample {
	t.Helper()
	dir, err := cluster.RepoFile("test/testdata/hami")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("HAMi examples in %s: %v (%d files)", dir, err, len(files))
	}
	var out []hamiExample
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ex := hamiExample{file: filepath.Base(f), pod: &corev1.Pod{}}
		if err := yaml.UnmarshalStrict(data, ex.pod); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if err := json.Unmarshal([]byte(ex.pod.Annotations["tessera.test/expect"]), &ex.expect); err != nil {
			t.Fatalf("%s: expectation: %v", f, err)
		}
		out = append(out, ex)
	}
	return out
}

// deployment is the example's pod as the template of a one-replica
// Deployment: its annotations, containers and limits as HAMi documents
// them, labelled so that the Deployment selects it.
func (ex hamiExample) deployment() *appsv1.Deployment {
	labels := map[string]string{env.AppLabel: ex.pod.Name}
	spec := *ex.pod.Spec.DeepCopy()
	spec.TerminationGracePeriodSeconds = ptr.To[int64](0)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: env.HeadlineNamespace, Name: ex.pod.Name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: ex.pod.Annotations},
				Spec:       spec,
			},
		},
	}
}

// TestHAMiWorkloadsThroughKarmada runs HAMi's documented pods
// (test/testdata/hami) unchanged, each as a one-replica Deployment, through
// Karmada with Tessera's estimator and every member under compat: hami:
// each lands in a member, on GPUs that fit, with the per-GPU limits HAMi
// gives it in the device plugin's answer; the MIG example, which Tessera
// does not support, waits with the key named.
func TestHAMiWorkloadsThroughKarmada(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	cfg, err := config.Parse([]byte("compat: hami\n"))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e, err := env.Start(ctx, env.Options{
		Members: env.HeadlineMembers(), Estimator: env.EstimatorTessera, Config: &cfg, Paths: paths, T: t, LogVerbosity: 2,
		KeepDir: os.Getenv(keepEnv) != "",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	examples := readHAMiExamples(t)
	// Whole-GPU examples first: HAMi spreads shares over GPUs by default,
	// and a share on every GPU would leave no whole one.
	for _, wholeFirst := range []bool{true, false} {
		var batch []hamiExample
		for _, ex := range examples {
			if (ex.expect.MemoryPercent == 100) == wholeFirst {
				batch = append(batch, ex)
			}
		}
		for _, ex := range batch {
			propagateHAMi(ctx, t, e, ex)
		}
		for _, ex := range batch {
			checkHAMiExample(ctx, t, e, ex)
		}
	}
	// Every example still runs (propagating one workload must not take
	// another's pods away), and no GPU holds more than it has.
	for _, ex := range examples {
		all, err := e.AllReplicas(ctx, env.HeadlineNamespace, ex.pod.Name)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, rs := range all {
			n += len(rs)
		}
		if n != 1 {
			t.Errorf("%s: %d pods at the end, want its one", ex.file, n)
		}
	}
	checkNoGPUOvercommitted(ctx, t, e)
}

// checkNoGPUOvercommitted: every member's GPUs hold no more than they have,
// and no slot is given twice.
func checkNoGPUOvercommitted(ctx context.Context, t *testing.T, e *env.Env) {
	t.Helper()
	for _, m := range e.Members() {
		views, err := m.GPUViews(ctx, e.Config().Keys())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range views {
			if v.Used.MemoryMiB > v.MemoryMiB || v.Used.Slots > v.Slots || v.Used.Cores > v.Cores {
				t.Errorf("%s GPU %s on %s is overcommitted: uses %+v of %d MiB, %d slots, %d cores", m.Name(), v.UUID, v.Node, v.Used, v.MemoryMiB, v.Slots, v.Cores)
			}
		}
		pods, err := m.Client().CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		slots := map[string]string{}
		for _, p := range pods.Items {
			a, found, err := gpustate.PodAssignment(&p, e.Config().Keys())
			if err != nil {
				t.Fatal(err)
			}
			if !found || gpustate.IsTerminal(&p) {
				continue
			}
			for _, c := range a.Containers {
				for _, d := range c.Devices {
					if other, dup := slots[d.SlotID]; dup {
						t.Errorf("%s: slot %s is assigned to both %s and %s", m.Name(), d.SlotID, other, p.Name)
					}
					slots[d.SlotID] = p.Name
				}
			}
		}
	}
}

func propagateHAMi(ctx context.Context, t *testing.T, e *env.Env, ex hamiExample) {
	t.Helper()
	if _, err := e.Karmada().Client().AppsV1().Deployments(env.HeadlineNamespace).Create(ctx, ex.deployment(), metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: create Deployment on Karmada: %v", ex.file, err)
	}
	var names []string
	for _, m := range e.Members() {
		names = append(names, m.Name())
	}
	pp := env.Workload{Namespace: env.HeadlineNamespace, Name: ex.pod.Name}.PropagationPolicy(names)
	if _, err := e.Karmada().KarmadaClient().PolicyV1alpha1().PropagationPolicies(env.HeadlineNamespace).Create(ctx, pp, metav1.CreateOptions{}); err != nil {
		t.Fatalf("%s: create PropagationPolicy on Karmada: %v", ex.file, err)
	}
}

// checkHAMiExample waits for the example's pod in whichever member Karmada
// chose, then checks its GPUs and the limits its container was handed.
func checkHAMiExample(ctx context.Context, t *testing.T, e *env.Env, ex hamiExample) {
	t.Helper()
	var member string
	var r env.Replica
	err := env.Eventually(ctx, podTimeout, ex.file+" to run, or to wait with a reason", func(ctx context.Context) (bool, string, error) {
		all, err := e.AllReplicas(ctx, env.HeadlineNamespace, ex.pod.Name)
		if err != nil {
			return false, err.Error(), nil
		}
		for m, rs := range all {
			if len(rs) != 1 {
				continue
			}
			member, r = m, rs[0]
			running := r.Phase == corev1.PodRunning && r.Ready
			waiting := r.Phase == corev1.PodPending && r.Node == "" && r.Why != ""
			return (ex.expect.Unsupported == "" && running) || (ex.expect.Unsupported != "" && waiting),
				fmt.Sprintf("%s in %s: %s on %q (%s)", r.Name, m, r.Phase, r.Node, r.Why), nil
		}
		return false, fmt.Sprintf("no pod yet (%v)", all), nil
	})
	if err != nil {
		t.Errorf("%s: %v", ex.file, err)
		return
	}
	if ex.expect.Unsupported != "" {
		if !strings.Contains(r.Why, ex.expect.Unsupported) {
			t.Errorf("%s: waits in %s because %q, which does not name %s", ex.file, member, r.Why, ex.expect.Unsupported)
		}
		t.Logf("%s waits in %s: %s", ex.file, member, r.Why)
		return
	}
	checkHAMiLimits(ctx, t, e, ex, member, r)
}

func checkHAMiLimits(ctx context.Context, t *testing.T, e *env.Env, ex hamiExample, member string, r env.Replica) {
	t.Helper()
	views, err := e.Member(member).GPUViews(ctx, e.Config().Keys())
	if err != nil {
		t.Fatal(err)
	}
	gpus := map[string]env.GPUView{}
	for _, v := range views {
		gpus[v.UUID] = v
	}
	if r.Assignment == nil || len(r.Assignment.Containers) != 1 {
		t.Errorf("%s in %s: assignment %+v (%v)", ex.file, member, r.Assignment, r.AssignmentErr)
		return
	}
	devs := r.Assignment.Containers[0].Devices
	if len(devs) != ex.expect.GPUs {
		t.Errorf("%s: %d GPUs, HAMi gives %d", ex.file, len(devs), ex.expect.GPUs)
	}
	allocs, rejected, seen := e.Member(member).Node(r.Node).Admission(r.UID)
	if !seen || rejected != "" || len(allocs) != 1 {
		t.Errorf("%s: kubelet admission seen=%t rejected=%q allocations=%d", ex.file, seen, rejected, len(allocs))
		return
	}
	// The limits file the node agent wrote once the kubelet named the
	// container, as the interception library reads it.
	limits, written, err := deviceplugin.ContainerLimits(allocs[0].Response)
	if err != nil || !written || limits.Refused != "" || len(limits.Devices) != len(devs) {
		t.Errorf("%s: limits %+v (written %t, %v), want one per GPU", ex.file, limits, written, err)
		return
	}
	for i, d := range devs {
		g := gpus[d.UUID]
		want := ex.expect.MemoryMiB
		if ex.expect.MemoryPercent > 0 {
			want = g.MemoryMiB * ex.expect.MemoryPercent / 100 // HAMi rounds down
		}
		if d.MemoryMiB != want || d.Cores != ex.expect.Cores {
			t.Errorf("%s on %s (%d MiB): assigned %d MiB, %d%% cores; HAMi gives %d MiB, %d%%",
				ex.file, d.UUID, g.MemoryMiB, d.MemoryMiB, d.Cores, want, ex.expect.Cores)
		}
		if got := limits.Devices[i].MemoryMiB; got != want {
			t.Errorf("%s: the container's limits file gives device %d %d MiB, HAMi gives %d", ex.file, i, got, want)
		}
		if ex.expect.Model != "" && !strings.Contains(g.Model, ex.expect.Model) {
			t.Errorf("%s: GPU %s is a %s, the pod asked for %s", ex.file, d.UUID, g.Model, ex.expect.Model)
		}
	}
	t.Logf("%s runs in %s on %s: %+v", ex.file, member, r.Node, devs)
}
