package nodemetrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Label sets, written in the order the exposition sorts labels (by name).
const (
	gpuA0 = `Hostname="node-a",UUID="GPU-a0",gpu="0",modelName="NVIDIA A100-SXM4-40GB"`
	gpuA1 = `Hostname="node-a",UUID="GPU-a1",gpu="1",modelName="NVIDIA A100-SXM4-40GB"`
)

func ctrLabels(container, uuid, index, ns, pod string) string {
	model := "NVIDIA A100-SXM4-40GB"
	if index == "" {
		model = ""
	}
	return fmt.Sprintf(`Hostname="node-a",UUID=%q,container=%q,gpu=%q,modelName=%q,namespace=%q,pod=%q`,
		uuid, container, index, model, ns, pod)
}

func procLabels(container, ns, pod string) string {
	return fmt.Sprintf(`Hostname="node-a",container=%q,namespace=%q,pod=%q`, container, ns, pod)
}

func braces(labels string, value string) string { return "{" + labels + "} " + value }

func skippedSeries(counts map[string]int) []string {
	var out []string
	for _, r := range skipReasons() {
		out = append(out, braces(`Hostname="node-a",reason="`+r+`"`, fmt.Sprint(counts[r])))
	}
	return out
}

func TestCollectStates(t *testing.T) {
	twoGPUs := []vgpu.GPU{gpuA100(0, true), gpuA100(1, true)}
	tests := []struct {
		name    string
		gpus    []vgpu.GPU
		pods    []AssignedPod
		skipped []SkippedPod
		regions map[string]RegionSnapshot
		errs    map[string]error
		want    map[string][]string
	}{{
		name: "GPUs without pods report capacity and nothing allocated",
		gpus: []vgpu.GPU{gpuA100(0, true), gpuA100(1, false)},
		want: map[string][]string{
			"tessera_gpu_memory_capacity_bytes":  {braces(gpuA0, "4.294967296e+10"), braces(gpuA1, "4.294967296e+10")},
			"tessera_gpu_memory_allocated_bytes": {braces(gpuA0, "0"), braces(gpuA1, "0")},
			"tessera_gpu_slots_capacity":         {braces(gpuA0, "10"), braces(gpuA1, "10")},
			"tessera_gpu_slots_allocated":        {braces(gpuA0, "0"), braces(gpuA1, "0")},
			"tessera_gpu_cores_allocated_ratio":  {braces(gpuA0, "0"), braces(gpuA1, "0")},
			"tessera_gpu_healthy":                {braces(gpuA0, "1"), braces(gpuA1, "0")},
			"tessera_node_pods_skipped":          skippedSeries(nil),
			"tessera_node_region_read_errors":    {braces(`Hostname="node-a"`, "0")},
		},
	}, {
		// HAMi #281: series must exist from allocation on, not from the
		// first kernel. No region file exists yet: use reads as zero.
		name: "allocated container before its first kernel has every series at zero use",
		gpus: twoGPUs,
		pods: []AssignedPod{pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 4096, 30)))},
		want: map[string][]string{
			"tessera_gpu_memory_allocated_bytes":       {braces(gpuA0, "4.294967296e+09"), braces(gpuA1, "0")},
			"tessera_gpu_slots_allocated":              {braces(gpuA0, "1"), braces(gpuA1, "0")},
			"tessera_gpu_cores_allocated_ratio":        {braces(gpuA0, "0.3"), braces(gpuA1, "0")},
			"tessera_container_memory_limit_bytes":     {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "4.294967296e+09")},
			"tessera_container_memory_used_bytes":      {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "0")},
			"tessera_container_core_limit_ratio":       {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "0.3")},
			"tessera_container_kernel_launches_total":  {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "0")},
			"tessera_container_gpu_busy_seconds_total": {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "0")},
			"tessera_container_processes":              {braces(procLabels("main", "ml", "train-0"), "0")},
			"tessera_node_region_read_errors":          {braces(`Hostname="node-a"`, "0")},
		},
	}, {
		name: "shared GPU sums allocations; regions match devices by UUID, else by ordinal",
		gpus: twoGPUs,
		pods: []AssignedPod{
			pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 4096, 30), device("GPU-a1", 4096, 30))),
			pod("web", "infer-0", "uid-2", ctr("server", device("GPU-a0", 2048, 0)), ctr("sidecar", device("GPU-a1", 1024, 50))),
		},
		regions: map[string]RegionSnapshot{
			// Recorded in the opposite order to the assignment: UUIDs decide.
			"uid-1/main": {Processes: 2, Devices: []RegionDevice{
				{UUID: "GPU-a1", UsedBytes: 1 << 30, KernelLaunches: 7, BusySeconds: 0.75},
				{UUID: "GPU-a0", UsedBytes: 3 << 30, KernelLaunches: 11, BusySeconds: 12.5},
			}},
			// No UUID recorded: ordinal 0 is the container's first device.
			// Uncapped, so the hook recorded no busy time.
			"uid-2/server": {Processes: 1, Devices: []RegionDevice{{UsedBytes: 512 << 20, KernelLaunches: 3}}},
		},
		want: map[string][]string{
			"tessera_gpu_memory_allocated_bytes": {braces(gpuA0, "6.442450944e+09"), braces(gpuA1, "5.36870912e+09")},
			"tessera_gpu_slots_allocated":        {braces(gpuA0, "2"), braces(gpuA1, "2")},
			"tessera_gpu_cores_allocated_ratio":  {braces(gpuA0, "0.3"), braces(gpuA1, "0.8")},
			"tessera_container_memory_used_bytes": {
				braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "3.221225472e+09"),
				braces(ctrLabels("main", "GPU-a1", "1", "ml", "train-0"), "1.073741824e+09"),
				braces(ctrLabels("server", "GPU-a0", "0", "web", "infer-0"), "5.36870912e+08"),
				braces(ctrLabels("sidecar", "GPU-a1", "1", "web", "infer-0"), "0"),
			},
			"tessera_container_core_limit_ratio": {
				braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "0.3"),
				braces(ctrLabels("main", "GPU-a1", "1", "ml", "train-0"), "0.3"),
				braces(ctrLabels("server", "GPU-a0", "0", "web", "infer-0"), "1"),
				braces(ctrLabels("sidecar", "GPU-a1", "1", "web", "infer-0"), "0.5"),
			},
			"tessera_container_kernel_launches_total": {
				braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "11"),
				braces(ctrLabels("main", "GPU-a1", "1", "ml", "train-0"), "7"),
				braces(ctrLabels("server", "GPU-a0", "0", "web", "infer-0"), "3"),
				braces(ctrLabels("sidecar", "GPU-a1", "1", "web", "infer-0"), "0"),
			},
			"tessera_container_gpu_busy_seconds_total": {
				braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "12.5"),
				braces(ctrLabels("main", "GPU-a1", "1", "ml", "train-0"), "0.75"),
				braces(ctrLabels("server", "GPU-a0", "0", "web", "infer-0"), "0"),
				braces(ctrLabels("sidecar", "GPU-a1", "1", "web", "infer-0"), "0"),
			},
			"tessera_container_processes": {
				braces(procLabels("main", "ml", "train-0"), "2"),
				braces(procLabels("server", "web", "infer-0"), "1"),
				braces(procLabels("sidecar", "web", "infer-0"), "0"),
			},
		},
	}, {
		name: "unreadable region keeps limits, drops use, and is counted",
		gpus: twoGPUs,
		pods: []AssignedPod{pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 4096, 0)))},
		errs: map[string]error{"uid-1/main": errors.New("region magic 0x0 is not TESSERA1")},
		want: map[string][]string{
			"tessera_container_memory_limit_bytes":     {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "4.294967296e+09")},
			"tessera_container_memory_used_bytes":      nil,
			"tessera_container_kernel_launches_total":  nil,
			"tessera_container_gpu_busy_seconds_total": nil,
			"tessera_container_processes":              nil,
			"tessera_node_region_read_errors":          {braces(`Hostname="node-a"`, "1")},
		},
	}, {
		name: "a GPU the node does not have leaves gpu and modelName empty and allocates nothing",
		gpus: twoGPUs[:1],
		pods: []AssignedPod{pod("ml", "train-0", "uid-1", ctr("main", device("GPU-gone", 1024, 0)))},
		want: map[string][]string{
			"tessera_gpu_memory_allocated_bytes":   {braces(gpuA0, "0")},
			"tessera_container_memory_limit_bytes": {braces(ctrLabels("main", "GPU-gone", "", "ml", "train-0"), "1.073741824e+09")},
		},
	}, {
		name: "skipped pods are counted by reason and produce no series",
		gpus: twoGPUs[:1],
		pods: []AssignedPod{
			pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 1024, 0))),
			pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 1024, 0))), // listed twice
			pod("ml", "twice", "uid-3", ctr("c", device("GPU-a0", 1024, 0)), ctr("c", device("GPU-a0", 2048, 0))),
		},
		skipped: []SkippedPod{{Pod: "ml/bad", Reason: SkipUndecodableAssignment, Err: errors.New("decode assignment: bad JSON")}},
		want: map[string][]string{
			"tessera_gpu_memory_allocated_bytes":   {braces(gpuA0, "1.073741824e+09")},
			"tessera_container_memory_limit_bytes": {braces(ctrLabels("main", "GPU-a0", "0", "ml", "train-0"), "1.073741824e+09")},
			"tessera_node_pods_skipped": skippedSeries(map[string]int{
				SkipUndecodableAssignment: 1, SkipDuplicatePod: 1, SkipInvalidAssignment: 1,
			}),
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			regions := &fakeRegions{regions: tt.regions, errs: tt.errs}
			c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{gpus: tt.gpus},
				Pods: &fakePods{pods: tt.pods, skipped: tt.skipped}, Regions: regions.read})
			if err != nil {
				t.Fatal(err)
			}
			text, names := exposition(t, tt.want)
			if err := testutil.CollectAndCompare(c, strings.NewReader(text), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestDeletedPodLeavesNoSeries scrapes the same collector before and after
// a pod goes away: its series must not outlive it.
func TestDeletedPodLeavesNoSeries(t *testing.T) {
	pods := &fakePods{}
	pods.set(pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 1024, 0))))
	regions := &fakeRegions{}
	c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{gpus: []vgpu.GPU{gpuA100(0, true)}}, Pods: pods, Regions: regions.read})
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "tessera_container_memory_limit_bytes"); n != 1 {
		t.Fatalf("before deletion: %d limit series, want 1", n)
	}
	pods.set()
	text, names := exposition(t, map[string][]string{
		"tessera_gpu_memory_allocated_bytes":   {braces(gpuA0, "0")},
		"tessera_container_memory_limit_bytes": nil,
		"tessera_container_processes":          nil,
	})
	if err := testutil.CollectAndCompare(c, strings.NewReader(text), names...); err != nil {
		t.Error(err)
	}
}

// TestPodSourceErrorKeepsCapacity: when pods cannot be listed, the scrape
// reports the error but still serves capacity and health.
func TestPodSourceErrorKeepsCapacity(t *testing.T) {
	regions := &fakeRegions{}
	c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{gpus: []vgpu.GPU{gpuA100(0, true)}},
		Pods: &fakePods{err: errors.New("pod cache not synced")}, Regions: regions.read})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "pod cache not synced") {
		t.Errorf("Gather error = %v, want the pod source's error", err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range []string{"tessera_gpu_memory_capacity_bytes", "tessera_gpu_healthy"} {
		if !got[name] {
			t.Errorf("%s is missing after a pod source error; got %v", name, got)
		}
	}
	if got["tessera_gpu_memory_allocated_bytes"] || got["tessera_container_memory_limit_bytes"] {
		t.Errorf("allocation series were served without knowing the pods: %v", got)
	}
}

func TestNewRejectsMissingInputs(t *testing.T) {
	regions := &fakeRegions{}
	tests := []struct {
		name string
		opts Options
	}{
		{"no node name", Options{GPUs: &fakeGPUs{}, Pods: &fakePods{}, Regions: regions.read}},
		{"no GPU source", Options{NodeName: testNode, Pods: &fakePods{}, Regions: regions.read}},
		{"no pod source", Options{NodeName: testNode, GPUs: &fakeGPUs{}, Regions: regions.read}},
		{"no region reader", Options{NodeName: testNode, GPUs: &fakeGPUs{}, Pods: &fakePods{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Error("New accepted incomplete options")
			}
		})
	}
}

// TestMetricsFollowConventions runs Prometheus' own linter (names, units,
// _total only on counters, no reserved suffixes) over a full scrape and checks every series is
// consistent with its descriptor (the pedantic registry does that).
func TestMetricsFollowConventions(t *testing.T) {
	regions := &fakeRegions{regions: map[string]RegionSnapshot{"uid-1/main": {Processes: 1, Devices: []RegionDevice{{UUID: "GPU-a0", UsedBytes: 1}}}}}
	c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{gpus: []vgpu.GPU{gpuA100(0, true)}},
		Pods:    &fakePods{pods: []AssignedPod{pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 1024, 10)))}},
		Regions: regions.read})
	if err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		// The camelCase labels (modelName, Hostname) are dcgm-exporter's
		// on purpose, so that series join; every other rule applies.
		if strings.Contains(p.Text, "snake_case") {
			continue
		}
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != len(help) {
		t.Errorf("gathered %d families, want all %d", len(families), len(help))
	}
	for _, f := range families {
		if help[f.GetName()] != f.GetHelp() {
			t.Errorf("%s: help %q, want %q", f.GetName(), f.GetHelp(), help[f.GetName()])
		}
	}
}
