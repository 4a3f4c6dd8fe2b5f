package extendere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// hamiExpect is a HAMi example's tessera.test/expect annotation: the
// per-GPU limits HAMi gives its container, or the key Tessera refuses.
type hamiExpect struct {
	GPUs          int    `json:"gpus"`
	MemoryMiB     int64  `json:"memoryMiB"`
	MemoryPercent int    `json:"memoryPercent"`
	Cores         int    `json:"cores"`
	Model         string `json:"model"`
	Unsupported   string `json:"unsupported"`
	// Webhook marks an example that relies on the admission webhook
	// adding nvidia.com/gpu (HAMi's defaultGPUNum).
	Webhook bool `json:"webhook"`
}

const hamiExpectKey = "tessera.test/expect"

// hamiExamples reads test/testdata/hami: HAMi's documented pod specs.
func hamiExamples(t *testing.T) []*corev1.Pod {
	t.Helper()
	files, err := filepath.Glob("../testdata/hami/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("HAMi examples: %v (%d files)", err, len(files))
	}
	var pods []*corev1.Pod
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{}
		if err := yaml.UnmarshalStrict(data, pod); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		// HAMi's admission webhook sets the scheduler; the spec is otherwise as written.
		pod.Namespace, pod.Spec.SchedulerName = "default", schedulerID
		pods = append(pods, pod)
	}
	return pods
}

// hamiSchedulerConfig is the shipped second-scheduler configuration with
// the managed resources the chart renders for compat: hami.
func hamiSchedulerConfig(t *testing.T, port int) string {
	t.Helper()
	cfg := schedulerConfig(t, port)
	shipped := "      - name: tessera.io/vgpu\n"
	if !strings.Contains(cfg, shipped) {
		t.Fatal("second-scheduler-config.yaml no longer lists tessera.io/vgpu")
	}
	var hami strings.Builder
	for _, n := range []string{config.HAMiGPU, config.HAMiMemory, config.HAMiMemoryPercent, config.HAMiCores} {
		fmt.Fprintf(&hami, "      - name: %s\n        ignoredByScheduler: false\n", n)
	}
	return strings.Replace(cfg, shipped+"        ignoredByScheduler: false\n", hami.String(), 1)
}

// addHAMiNode creates a Node as the node agent publishes it under
// compat: hami: nvidia.com/gpu slots, Tessera's and HAMi's memory and cores,
// and gpumem-percentage, in capacity and allocatable, and the inventory.
func addHAMiNode(ctx context.Context, t *testing.T, client kubernetes.Interface, name, model string, memMiB int64, n int) []vgpu.GPU {
	t.Helper()
	var gpus []vgpu.GPU
	for i := range n {
		gpus = append(gpus, vgpu.GPU{UUID: fmt.Sprintf("GPU-%s-%d", name, i), Index: i, Model: model, MemoryMiB: memMiB, Slots: 10, Cores: vgpu.FullCores, Healthy: true})
	}
	q := func(v int64) resource.Quantity { return *resource.NewQuantity(v, resource.DecimalSI) }
	capacity := corev1.ResourceList{
		config.HAMiGPU: q(int64(n * 10)), config.HAMiMemory: q(int64(n) * memMiB), config.HAMiCores: q(int64(n * 100)),
		config.HAMiMemoryPercent: q(int64(n * 100)), corev1.ResourceName(resources.Memory): q(int64(n) * memMiB),
		corev1.ResourceName(resources.Cores): q(int64(n * 100)),
	}
	if _, err := cluster.AddNode(ctx, client, name, capacity, nil); err != nil {
		t.Fatal(err)
	}
	inv, err := annotations.EncodeInventory(annotations.Inventory{GPUs: gpus})
	if err != nil {
		t.Fatal(err)
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{keys.Inventory: inv}}})
	if _, err := client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return gpus
}

// TestHAMiExamplesOnARealCluster runs HAMi's documented pod specs unchanged
// through the real kube-apiserver, with Tessera's admission webhook
// registered as the chart registers it, and a real kube-scheduler with the
// extender, under compat: hami. A pod that gives only HAMi's memory is
// created with nvidia.com/gpu: 1 (defaultGPUNum) in its limits and
// requests. Each lands on GPUs that fit with the per-GPU limits HAMi gives
// it (a memory percentage resolved on the GPU it lands on); an unsupported
// option leaves the pod Pending with an event that names it.
func TestHAMiExamplesOnARealCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: starts real etcd, kube-apiserver and kube-scheduler (test/cluster)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	ports, port := holdPort(t)
	m := startSchedulerMember(ctx, t, "hami", hamiSchedulerConfig(t, port))
	client := m.Client()
	// Two kinds of GPU, so that a percentage resolves differently by node;
	// enough A100s that the whole-GPU examples fit whatever the others took
	// (HAMi spreads over GPUs by default).
	byUUID := map[string]vgpu.GPU{}
	for _, g := range append(addHAMiNode(ctx, t, client, "a100", "NVIDIA A100-SXM4-80GB", 81920, 12),
		addHAMiNode(ctx, t, client, "t4", "Tesla T4", 15360, 4)...) {
		byUUID[g.UUID] = g
	}
	cfgFile := filepath.Join(t.TempDir(), "tessera.yaml")
	if err := os.WriteFile(cfgFile, []byte("compat: hami\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ext := startExtender(ctx, t, m.Kubeconfig(), ports, port, cfgFile)
	defer ext.stop(t)
	startWebhook(ctx, t, client, cfgFile)

	pods := hamiExamples(t)
	asWritten := map[string]*corev1.Pod{}
	for _, p := range pods {
		asWritten[p.Name] = p.DeepCopy()
	}
	createAll(ctx, t, client, pods)
	fits := 0
	for _, p := range pods {
		if !strings.Contains(p.Annotations[hamiExpectKey], "unsupported") {
			fits++
		}
	}
	waitBound(ctx, t, client, fits, 3*time.Minute, 100*time.Millisecond)
	mutated := 0
	for _, pod := range listPods(ctx, t, client) {
		var want hamiExpect
		if err := json.Unmarshal([]byte(pod.Annotations[hamiExpectKey]), &want); err != nil {
			t.Fatalf("pod %s: expectation: %v", pod.Name, err)
		}
		if want.Unsupported != "" {
			checkNeverFit(ctx, t, client, []corev1.Pod{pod}, map[string]string{pod.Name: want.Unsupported})
			continue
		}
		// What the API server stored: the example's nvidia.com/gpu, or
		// the one the webhook added where the example gives none (and the
		// request the API server defaults from that limit).
		written, _ := gpuLimitAndRequest(asWritten[pod.Name].Spec.Containers[0])
		limit, request := gpuLimitAndRequest(pod.Spec.Containers[0])
		if wantCount := fmt.Sprint(want.GPUs); limit != wantCount || request != wantCount || (written == "") != want.Webhook {
			t.Errorf("pod %s: nvidia.com/gpu limit %q request %q (written %q, webhook %v), want %s", pod.Name, limit, request, written, want.Webhook, wantCount)
		}
		if want.Webhook {
			mutated++
		}
		a, err := annotations.DecodeAssignment(pod.Annotations[keys.Assignment])
		if err != nil || a.Node != pod.Spec.NodeName || len(a.Containers) != 1 {
			t.Errorf("pod %s on %q: assignment %+v, %v", pod.Name, pod.Spec.NodeName, a, err)
			continue
		}
		devs := a.Containers[0].Devices
		if len(devs) != want.GPUs {
			t.Errorf("pod %s: %d GPUs, want %d", pod.Name, len(devs), want.GPUs)
		}
		for _, d := range devs {
			g := byUUID[d.UUID]
			wantMem := want.MemoryMiB
			if want.MemoryPercent > 0 {
				wantMem = g.MemoryMiB * int64(want.MemoryPercent) / 100 // HAMi rounds down
			}
			if d.MemoryMiB != wantMem || d.Cores != want.Cores {
				t.Errorf("pod %s on %s (%d MiB): limits %d MiB, %d%% cores; HAMi gives %d MiB, %d%%", pod.Name, d.UUID, g.MemoryMiB, d.MemoryMiB, d.Cores, wantMem, want.Cores)
			}
			if want.Model != "" && !strings.Contains(g.Model, want.Model) {
				t.Errorf("pod %s: GPU %s is a %s, want %s", pod.Name, d.UUID, g.Model, want.Model)
			}
		}
		t.Logf("pod %s: %s %+v", pod.Name, pod.Spec.NodeName, devs)
	}
	if mutated == 0 {
		t.Error("no example relied on the webhook's defaultGPUNum (test/testdata/hami)")
	}
	checkAssignments(t, listPods(ctx, t, client), func() []vgpu.GPU {
		var all []vgpu.GPU
		for _, g := range byUUID {
			all = append(all, g)
		}
		return all
	}())
}
