package server

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

func TestMetrics(t *testing.T) {
	nodes, pods := smallCluster()
	// A pod that waits for a GPU (no node, no assignment), and one that
	// asks for none: only the first counts as waiting.
	waiting := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: "waiting"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{
			Limits: quantities(resVGPU, "1", resMemory, "1024"),
		}}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	cpuOnly := waiting.DeepCopy()
	cpuOnly.Name, cpuOnly.Spec.Containers[0].Resources.Limits = "cpu-only", quantities("cpu", "1")
	e := startEnv(t, objects(nodes, append(pods, waiting, cpuOnly))...)
	for range 3 {
		if _, err := e.maxReplicas(t, quantities(resVGPU, "1", resMemory, "1024"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.maxReplicas(t, quantities(resVGPU, "-1"), nil); err == nil {
		t.Fatal("a negative request was answered")
	}
	const mib = 1 << 20
	// good: GPU 0 has 9 slots, 20 GiB and 50% left; GPU 1 is untouched.
	gauges := map[string]float64{
		"tessera_estimator_free_vgpu_slots":                     9 + 10,
		"tessera_estimator_free_gpu_memory_bytes":               (20480 + 81920) * mib,
		"tessera_estimator_free_vgpu_cores":                     50 + 100,
		"tessera_estimator_largest_placeable_vgpu_memory_bytes": testcluster.GPUMemoryMiB * mib,
		"tessera_estimator_nodes":                               2,
		"tessera_estimator_nodes_skipped":                       1,
		"tessera_estimator_pods_skipped":                        0,
		// The cluster series over the same state: the broken node's GPU
		// does not count.
		"tessera_cluster_gpus":                  2,
		"tessera_cluster_gpu_slots_free":        9 + 10,
		"tessera_cluster_gpu_memory_free_bytes": (20480 + 81920) * mib,
		"tessera_cluster_gpu_cores_free_ratio":  0.5 + 1,
		"tessera_cluster_pods_waiting":          1,
	}
	for name, want := range gauges {
		if got := metricValue(t, e, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	families, err := e.server.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		if f.GetName() != "tessera_estimator_request_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var rpc, code, cluster string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "rpc":
					rpc = l.GetValue()
				case "code":
					code = l.GetValue()
				case "cluster":
					cluster = l.GetValue()
				}
			}
			if cluster != testCluster {
				t.Errorf("request metric has cluster %q, want %q", cluster, testCluster)
			}
			counts[rpc+"/"+code] += m.GetHistogram().GetSampleCount()
		}
	}
	if counts["MaxAvailableReplicas/OK"] != 3 || counts["MaxAvailableReplicas/InvalidArgument"] != 1 {
		t.Errorf("request latency samples = %v, want 3 OK and 1 InvalidArgument", counts)
	}
}
