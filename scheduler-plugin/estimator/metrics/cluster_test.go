package metrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

type fixedState struct{ s *gpucache.Snapshot }

func (f fixedState) Snapshot() *gpucache.Snapshot { return f.s }

type fixedAge time.Duration

func (a fixedAge) Age() time.Duration { return time.Duration(a) }

type fixedWaiting int

func (w fixedWaiting) Count() int { return int(w) }

const gib = 1024 // MiB

// device is one GPU of 80 GiB, 10 slots and 100% cores with used taken.
func device(uuid, model string, healthy bool, used vgpu.Usage) vgpu.DeviceState {
	return vgpu.DeviceState{
		GPU:  vgpu.GPU{UUID: uuid, Model: model, MemoryMiB: 80 * gib, Slots: 10, Cores: 100, Healthy: healthy},
		Used: used,
	}
}

// clusterMetrics lists every cluster metric, so that a case expecting no
// series of one proves it absent.
var clusterMetrics = []string{
	"tessera_cluster_nodes", "tessera_cluster_gpus", "tessera_cluster_gpus_healthy",
	"tessera_cluster_gpu_slots_capacity", "tessera_cluster_gpu_slots_free",
	"tessera_cluster_gpu_memory_capacity_bytes", "tessera_cluster_gpu_memory_free_bytes",
	"tessera_cluster_gpu_memory_largest_free_bytes",
	"tessera_cluster_gpu_cores_capacity_ratio", "tessera_cluster_gpu_cores_free_ratio",
	"tessera_cluster_pods_waiting",
}

// exposition renders the expected text of every cluster metric: values
// maps a metric name to its series, keyed by model ("" for no model label).
// Help texts are not what the cases check: they are taken from help.
func exposition(cluster string, help map[string]string, values map[string]map[string]float64) string {
	var b strings.Builder
	for _, name := range clusterMetrics {
		series, ok := values[name]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help[name], name)
		for model, v := range series {
			if model == "" {
				fmt.Fprintf(&b, "%s{cluster=%q} %v\n", name, cluster, v)
			} else {
				fmt.Fprintf(&b, "%s{cluster=%q,modelName=%q} %v\n", name, cluster, model, v)
			}
		}
	}
	return b.String()
}

func TestClusterMetrics(t *testing.T) {
	const mib = 1 << 20
	const a100, h100 = "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"
	tests := []struct {
		name    string
		nodes   []*gpucache.NodeGPUs
		waiting int
		want    map[string]map[string]float64
	}{
		{
			name: "no GPUs: only the waiting pods",
			nodes: []*gpucache.NodeGPUs{
				{Name: "cpu-only"},
				{Name: "broken", InventoryErr: errors.New("undecodable")},
			},
			waiting: 2,
			want:    map[string]map[string]float64{"tessera_cluster_pods_waiting": {"": 2}},
		},
		{
			name: "two models; free counts healthy GPUs only, totals every GPU",
			nodes: []*gpucache.NodeGPUs{
				{Name: "a1", Devices: []vgpu.DeviceState{
					device("a-0", a100, true, vgpu.Usage{Slots: 2, MemoryMiB: 50 * gib, Cores: 60}),
					device("a-1", a100, true, vgpu.Usage{}),
					// Unhealthy: counted in the totals, never free.
					device("a-2", a100, false, vgpu.Usage{}),
				}},
				{Name: "a2", Devices: []vgpu.DeviceState{
					// Every slot taken: its free memory is no block a vGPU can get.
					device("a-3", a100, true, vgpu.Usage{Slots: 10, MemoryMiB: 10 * gib, Cores: 0}),
				}},
				{Name: "h1", Devices: []vgpu.DeviceState{
					device("h-0", h100, true, vgpu.Usage{Slots: 1, MemoryMiB: 20 * gib, Cores: 25}),
					device("h-1", h100, true, vgpu.Usage{Slots: 1, MemoryMiB: 30 * gib, Cores: 25}),
				}},
				{Name: "broken", InventoryErr: errors.New("undecodable")},
			},
			waiting: 0,
			want: map[string]map[string]float64{
				"tessera_cluster_nodes":                         {a100: 2, h100: 1},
				"tessera_cluster_gpus":                          {a100: 4, h100: 2},
				"tessera_cluster_gpus_healthy":                  {a100: 3, h100: 2},
				"tessera_cluster_gpu_slots_capacity":            {a100: 40, h100: 20},
				"tessera_cluster_gpu_slots_free":                {a100: 8 + 10 + 0, h100: 9 + 9},
				"tessera_cluster_gpu_memory_capacity_bytes":     {a100: 4 * 80 * gib * mib, h100: 2 * 80 * gib * mib},
				"tessera_cluster_gpu_memory_free_bytes":         {a100: (30 + 80 + 70) * gib * mib, h100: (60 + 50) * gib * mib},
				"tessera_cluster_gpu_memory_largest_free_bytes": {a100: 80 * gib * mib, h100: 60 * gib * mib},
				"tessera_cluster_gpu_cores_capacity_ratio":      {a100: 4, h100: 2},
				"tessera_cluster_gpu_cores_free_ratio":          {a100: 0.4 + 1 + 1, h100: 0.75 + 0.75},
				"tessera_cluster_pods_waiting":                  {"": 0},
			},
		},
		{
			name: "a model with no free slot anywhere has no free block",
			nodes: []*gpucache.NodeGPUs{{Name: "full", Devices: []vgpu.DeviceState{
				device("f-0", a100, true, vgpu.Usage{Slots: 10, MemoryMiB: 40 * gib, Cores: 100}),
			}}},
			waiting: 7,
			want: map[string]map[string]float64{
				"tessera_cluster_nodes":                         {a100: 1},
				"tessera_cluster_gpus":                          {a100: 1},
				"tessera_cluster_gpus_healthy":                  {a100: 1},
				"tessera_cluster_gpu_slots_capacity":            {a100: 10},
				"tessera_cluster_gpu_slots_free":                {a100: 0},
				"tessera_cluster_gpu_memory_capacity_bytes":     {a100: 80 * gib * mib},
				"tessera_cluster_gpu_memory_free_bytes":         {a100: 40 * gib * mib},
				"tessera_cluster_gpu_memory_largest_free_bytes": {a100: 0},
				"tessera_cluster_gpu_cores_capacity_ratio":      {a100: 1},
				"tessera_cluster_gpu_cores_free_ratio":          {a100: 0},
				"tessera_cluster_pods_waiting":                  {"": 7},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := fixedState{gpucache.NewSnapshot(tt.nodes, time.Unix(0, 0))}
			m, err := New("member-1", state, fixedAge(0), fixedWaiting(tt.waiting))
			if err != nil {
				t.Fatal(err)
			}
			families, err := m.Registry().Gather()
			if err != nil {
				t.Fatal(err)
			}
			help := map[string]string{}
			for _, f := range families {
				help[f.GetName()] = f.GetHelp()
			}
			want := exposition("member-1", help, tt.want)
			if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), clusterMetrics...); err != nil {
				t.Error(err)
			}
		})
	}
}
