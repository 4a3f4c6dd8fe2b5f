package server

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// bruteShape is a replica for the brute-force packer: one container on
// width distinct GPUs, taking memMiB (or, when whole, the GPU's entire
// memory) and cores on each, plus ordinary requests.
type bruteShape struct {
	width       int
	memMiB      int64
	whole       bool
	cores       int
	milliCPU    int64
	memoryBytes int64
	zone        string // "" matches every node
}

// bruteForce answers MaxAvailableReplicas for a cluster by exhaustive
// search, independently of the estimator: it reads the objects itself,
// and packs copies one at a time trying every set of GPUs.
func bruteForce(t *testing.T, nodes []*corev1.Node, pods []*corev1.Pod, shape bruteShape) int64 {
	t.Helper()
	keys := annotations.DefaultKeys()
	memo := map[string]int64{}
	var total int64
	for _, node := range nodes {
		if shape.zone != "" && node.Labels["zone"] != shape.zone {
			continue
		}
		inv, err := annotations.DecodeInventory(node.Annotations[keys.Inventory])
		if err != nil {
			t.Fatalf("decode inventory of %s: %v", node.Name, err)
		}
		type free struct {
			slots, cores int
			mem, cap     int64
		}
		gpus := map[string]*free{}
		for _, g := range inv.GPUs {
			gpus[g.UUID] = &free{slots: g.Slots, cores: g.Cores, mem: g.MemoryMiB, cap: g.MemoryMiB}
		}
		cpu := node.Status.Allocatable.Cpu().MilliValue()
		mem := node.Status.Allocatable.Memory().Value()
		podsFree := node.Status.Allocatable.Pods().Value()
		for _, p := range pods {
			if p.Spec.NodeName != node.Name {
				continue
			}
			podsFree--
			cpu -= p.Spec.Containers[0].Resources.Requests.Cpu().MilliValue()
			mem -= p.Spec.Containers[0].Resources.Requests.Memory().Value()
			a, err := annotations.DecodeAssignment(p.Annotations[keys.Assignment])
			if err != nil {
				t.Fatalf("decode assignment of %s: %v", p.Name, err)
			}
			for _, c := range a.Containers {
				for _, d := range c.Devices {
					gpus[d.UUID].slots--
					gpus[d.UUID].mem -= d.MemoryMiB
					gpus[d.UUID].cores -= d.Cores
				}
			}
		}
		var units []int
		for _, f := range gpus {
			k := f.slots
			if shape.whole && f.mem != f.cap {
				k = 0
			}
			if shape.whole {
				k = min(k, 1)
			} else {
				k = min(k, int(f.mem/shape.memMiB))
			}
			if shape.cores > 0 {
				k = min(k, f.cores/shape.cores)
			}
			units = append(units, max(k, 0))
		}
		n := packCopies(units, shape.width, memo)
		n = min(n, podsFree)
		if shape.milliCPU > 0 {
			n = min(n, cpu/shape.milliCPU)
		}
		if shape.memoryBytes > 0 {
			n = min(n, mem/shape.memoryBytes)
		}
		total += max(n, 0)
	}
	return total
}

// packCopies is the most copies of a width-GPU container that GPUs with the
// given unit capacities can host, trying every choice of GPUs for each copy.
func packCopies(units []int, width int, memo map[string]int64) int64 {
	units = slices.Clone(units)
	slices.Sort(units)
	key := fmt.Sprint(width, units)
	if v, ok := memo[key]; ok {
		return v
	}
	var best int64
	var choose func(from, left int)
	choose = func(from, left int) {
		if left == 0 {
			best = max(best, 1+packCopies(units, width, memo))
			return
		}
		for i := from; i < len(units); i++ {
			if units[i] > 0 {
				units[i]--
				choose(i+1, left-1)
				units[i]++
			}
		}
	}
	choose(0, width)
	memo[key] = best
	return best
}
