package gpustate

import (
	"cmp"
	"slices"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Capacity is an amount free out of a total.
type Capacity struct {
	Free  int64 `json:"free"`
	Total int64 `json:"total"`
}

// ModelSummary is one GPU model in one cluster (or, with Cluster empty,
// in a whole fleet). Totals count every GPU the inventories publish; free
// amounts count healthy GPUs only, since nothing is placed on an unhealthy
// one.
type ModelSummary struct {
	Cluster     string   `json:"cluster,omitempty"`
	Model       string   `json:"model"`
	Nodes       int      `json:"nodes"`
	GPUs        int      `json:"gpus"`
	HealthyGPUs int      `json:"healthyGPUs"`
	Slots       Capacity `json:"slots"`
	MemoryMiB   Capacity `json:"memoryMiB"`
	Cores       Capacity `json:"cores"`
	// LargestFreeMiB is the most memory free on any single healthy GPU
	// that still has a free slot: the largest share one more vGPU could
	// get. Far below MemoryMiB.Free means the memory is fragmented.
	LargestFreeMiB int64 `json:"largestFreeMiB"`
}

// SummarizeModels sums nodes' GPUs per model, sorted by model name. Each
// element of nodes is one node's devices.
func SummarizeModels(cluster string, nodes [][]vgpu.DeviceState) []ModelSummary {
	byModel := map[string]*ModelSummary{}
	for _, devices := range nodes {
		seen := map[string]bool{}
		for i := range devices {
			d := &devices[i]
			s := byModel[d.Model]
			if s == nil {
				s = &ModelSummary{Cluster: cluster, Model: d.Model}
				byModel[d.Model] = s
			}
			if !seen[d.Model] {
				seen[d.Model] = true
				s.Nodes++
			}
			s.add(d)
		}
	}
	out := make([]ModelSummary, 0, len(byModel))
	for _, s := range byModel {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b ModelSummary) int { return cmp.Compare(a.Model, b.Model) })
	return out
}

func (s *ModelSummary) add(d *vgpu.DeviceState) {
	s.GPUs++
	s.Slots.Total += int64(d.Slots)
	s.MemoryMiB.Total = saturatingAdd(s.MemoryMiB.Total, d.MemoryMiB)
	s.Cores.Total += int64(d.Cores)
	if !d.Healthy {
		return
	}
	s.HealthyGPUs++
	free := d.Free()
	s.Slots.Free += int64(free.Slots)
	s.MemoryMiB.Free = saturatingAdd(s.MemoryMiB.Free, free.MemoryMiB)
	s.Cores.Free += int64(free.Cores)
	if free.Slots > 0 {
		s.LargestFreeMiB = max(s.LargestFreeMiB, free.MemoryMiB)
	}
}

// MergeModels adds summaries of the same model together (fleet totals):
// counts and capacities add up, the largest free block is the largest of
// any. The result has no cluster and is sorted by model.
func MergeModels(summaries []ModelSummary) []ModelSummary {
	byModel := map[string]*ModelSummary{}
	for _, s := range summaries {
		t := byModel[s.Model]
		if t == nil {
			t = &ModelSummary{Model: s.Model}
			byModel[s.Model] = t
		}
		t.Nodes += s.Nodes
		t.GPUs += s.GPUs
		t.HealthyGPUs += s.HealthyGPUs
		t.Slots = t.Slots.plus(s.Slots)
		t.MemoryMiB = t.MemoryMiB.plus(s.MemoryMiB)
		t.Cores = t.Cores.plus(s.Cores)
		t.LargestFreeMiB = max(t.LargestFreeMiB, s.LargestFreeMiB)
	}
	out := make([]ModelSummary, 0, len(byModel))
	for _, t := range byModel {
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b ModelSummary) int { return cmp.Compare(a.Model, b.Model) })
	return out
}

func (c Capacity) plus(o Capacity) Capacity {
	return Capacity{Free: saturatingAdd(c.Free, o.Free), Total: saturatingAdd(c.Total, o.Total)}
}

func saturatingAdd(a, b int64) int64 {
	if s := a + b; (b >= 0) == (s >= a) {
		return s
	}
	if b > 0 {
		return 1<<63 - 1
	}
	return -1 << 63
}
