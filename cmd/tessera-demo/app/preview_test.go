package app

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDemoReport runs the whole preview and checks that its report shows
// what each part really did, not merely that it printed something.
func TestDemoReport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out strings.Builder
	if err := RunPreview(ctx, &out, PreviewOptions{Machine: "dgxa100", NodeName: "demo-node", StepTimeout: 30 * time.Second}); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	report := out.String()
	want := []struct{ what, text string }{
		{"every slot advertised", "80 tessera.io/vgpu devices, 80 healthy"},
		{"memory of 8 A100-40GB in capacity and allocatable", "tessera.io/vgpu-memory: capacity 327680, allocatable 327680"},
		{"cores of 8 GPUs", "tessera.io/vgpu-cores: capacity 800, allocatable 800"},
		{"the first pod's memory limit, from its limits file", ": 10240 MiB, 30% of its cores"},
		{"the second pod's core limit, from its limits file", ": 8192 MiB, 50% of its cores"},
		{"the training pod's limits on both GPUs", "limits file: device 1 "},
		{"the training pod's two GPUs", "TESSERA_DEVICE_COUNT=2"},
		{"the sick GPU's slots withdrawn", "80 tessera.io/vgpu devices, 70 healthy"},
		{"the sick GPU in the annotation", "7 healthy (GPU 7 healthy=false)"},
		{"the sick GPU's memory dropped", "tessera.io/vgpu-memory: capacity 286720, allocatable 286720"},
		{"healthz ok", "/healthz -> 200"},
		{"clean shutdown", "The node agent shut down cleanly."},
	}
	for _, w := range want {
		if !strings.Contains(report, w.text) {
			t.Errorf("report does not show %s (%q):\n%s", w.what, w.text, report)
		}
	}
	// Allocate cannot know the pod, so no limit is in any environment.
	if strings.Contains(report, "TESSERA_MEMORY_LIMIT_MIB_") || strings.Contains(report, "TESSERA_CORE_LIMIT_") {
		t.Errorf("a limit is in a container's environment:\n%s", report)
	}
	// The two inference pods share one GPU on distinct slots.
	var servers []string
	for _, line := range strings.Split(report, "\n") {
		if rest, ok := strings.CutPrefix(line, "  container server: slots "); ok {
			slot, _, _ := strings.Cut(rest, " ")
			servers = append(servers, slot)
		}
	}
	if len(servers) != 2 {
		t.Fatalf("want 2 server containers, got slots %v", servers)
	}
	gpuA, slotA, _ := strings.Cut(servers[0], "::")
	gpuB, slotB, _ := strings.Cut(servers[1], "::")
	if gpuA != gpuB || slotA == slotB {
		t.Errorf("inference pods got %v; want one GPU, two slots", servers)
	}
}

func TestDemoRejectsUnknownMachine(t *testing.T) {
	var out strings.Builder
	err := RunPreview(context.Background(), &out, PreviewOptions{Machine: "dgx-nonexistent", NodeName: "n", StepTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), `"dgx-nonexistent"`) {
		t.Fatalf("Run error = %v, want one naming the machine", err)
	}
}
