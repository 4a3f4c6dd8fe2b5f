package app

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/region"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// checkMetricsOfAdmittedPod admits a pod through the fake kubelet and
// checks /metrics: the GPU's series, the container's series with the
// limits of its assignment, and that the agent reads the very region file
// the plugin mounted into the container.
func (s *testSetup) checkMetricsOfAdmittedPod(t *testing.T, ctx context.Context, metricsURL string, g vgpu.GPU) {
	t.Helper()
	const memMiB, cores = 2048, 30
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "trainer", Namespace: "ml", UID: types.UID("uid-trainer"), Annotations: map[string]string{}},
		Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{{
			Name: "cuda", Image: "cuda",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				corev1.ResourceName(s.cfg.Resources.VGPU): resource.MustParse("1"),
			}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	assignment, err := annotations.EncodeAssignment(annotations.Assignment{Node: testNode, Containers: []annotations.ContainerAssignment{{
		Name:    "cuda",
		Devices: []annotations.AssignedDevice{{UUID: g.UUID, SlotID: vgpu.SlotID(g.UUID, 0), MemoryMiB: memMiB, Cores: cores}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	pod.Annotations[s.cfg.Keys().Assignment] = assignment
	if _, err := s.client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	allocs, err := s.kubelet.AdmitPod(ctx, pod)
	if err != nil || len(allocs) != 1 {
		t.Fatalf("admit pod through the fake kubelet: %v (%d containers)", err, len(allocs))
	}

	gpuLabels := map[string]string{"UUID": g.UUID, "Hostname": testNode}
	ctrLabels := map[string]string{"namespace": "ml", "pod": "trainer", "container": "cuda", "UUID": g.UUID, "Hostname": testNode}
	var families map[string]*dto.MetricFamily
	poll(t, "the container's series on /metrics", func() bool {
		families = scrape(t, metricsURL)
		_, ok := value(families, "tessera_container_memory_limit_bytes", ctrLabels)
		return ok
	})
	for _, want := range []struct {
		name   string
		labels map[string]string
		value  float64
	}{
		{"tessera_gpu_memory_capacity_bytes", gpuLabels, float64(g.MemoryMiB) * (1 << 20)},
		{"tessera_gpu_memory_allocated_bytes", gpuLabels, memMiB * (1 << 20)},
		{"tessera_gpu_slots_allocated", gpuLabels, 1},
		{"tessera_container_memory_limit_bytes", ctrLabels, memMiB * (1 << 20)},
		{"tessera_container_core_limit_ratio", ctrLabels, cores / 100.0},
		// The plugin created an empty region file; no process used it yet.
		{"tessera_container_memory_used_bytes", ctrLabels, 0},
		{"tessera_node_region_read_errors", map[string]string{"Hostname": testNode}, 0},
	} {
		if got, ok := value(families, want.name, want.labels); !ok || got != want.value {
			t.Errorf("%s%v = %v (found %v), want %v", want.name, want.labels, got, ok, want.value)
		}
	}

	// Spoil the region file the plugin mounted into the container: the
	// metrics must now fail to read it, which proves the agent reads the
	// file the plugin made (a file it cannot find reads as zero use).
	var regionDir string
	for _, m := range allocs[0].Response.GetMounts() {
		if m.GetContainerPath() == deviceplugin.ContainerRegionDir {
			regionDir = m.GetHostPath()
		}
	}
	if regionDir == "" {
		t.Fatalf("Allocate mounted no region directory: %v", allocs[0].Response.GetMounts())
	}
	// Full size, so that it is not read as a region no process sized yet.
	spoilt := bytes.Repeat([]byte{0xff}, region.Size)
	if err := os.WriteFile(filepath.Join(regionDir, "usage.region"), spoilt, 0o600); err != nil {
		t.Fatal(err)
	}
	families = scrape(t, metricsURL)
	if got, _ := value(families, "tessera_node_region_read_errors", map[string]string{"Hostname": testNode}); got != 1 {
		t.Errorf("region read errors = %v after the mounted region file was spoilt, want 1", got)
	}
}

// scrape fetches and parses /metrics.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := getBody(t, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s = %d: %s", url, code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

// value returns the gauge of the series of name whose labels include want.
func value(families map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		matches := true
		for k, v := range want {
			matches = matches && have[k] == v
		}
		if matches {
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}
