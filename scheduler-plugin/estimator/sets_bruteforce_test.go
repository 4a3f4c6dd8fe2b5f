package estimator

import (
	"strconv"
	"strings"
)

// The reference packer for the component-set property test. It shares no
// code with the estimator or pkg/vgpu: it works on plain integers written
// down by the test's generator. It decides whether k sets fit in two
// exhaustive steps:
//
//  1. For every node, every count vector (replicas per component, up to
//     what k sets need) is checked by placing each replica on a set of
//     distinct GPUs (a bitmask), trying every mask, checking every capacity
//     directly. Replicas of one component are interchangeable, so their
//     masks are tried in non-decreasing order only, and a state that
//     already failed is remembered. Fewer replicas fit wherever more do,
//     so the enumeration stops counting up a component at the first count
//     that fails.
//  2. The sums of one feasible vector per node that are reachable (capped
//     at what k sets need) are computed node by node; k sets fit iff the
//     full need is reachable.

type refGPU struct {
	slots, cores int
	mem, memCap  int64
}

type refNode struct {
	zoneA bool
	// pods, milliCPU, memory and Tessera's node totals (vGPUs, MiB, cores
	// requested) still free.
	pods, milliCPU, memory    int64
	vgpus, vgpuMem, vgpuCores int64
	gpus                      []refGPU // healthy GPUs only
}

type refComponent struct {
	replicas         int
	milliCPU, memory int64
	onlyZoneA        bool
	gpus             int   // 0: no GPU
	memPerGPU        int64 // 0 with gpus > 0: the whole memory of untouched GPUs
	coresPerGPU      int
}

// refFits reports whether k sets fit.
func refFits(nodes []refNode, comps []refComponent, k int) bool {
	need := make([]int, len(comps))
	for c := range comps {
		need[c] = k * comps[c].replicas
	}
	reachable := map[string][]int{refKey(make([]int, len(comps))): make([]int, len(comps))}
	for _, n := range nodes {
		vectors := refNodeVectors(n, comps, need)
		next := map[string][]int{}
		for _, a := range reachable {
			for _, v := range vectors {
				sum := make([]int, len(a))
				for c := range a {
					sum[c] = min(a[c]+v[c], need[c])
				}
				next[refKey(sum)] = sum
			}
		}
		reachable = next
	}
	_, ok := reachable[refKey(need)]
	return ok
}

func refKey(v []int) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, ",")
}

// refNodeVectors lists every count vector up to need that fits on n.
func refNodeVectors(n refNode, comps []refComponent, need []int) [][]int {
	var out [][]int
	v := make([]int, len(comps))
	var walk func(c int)
	walk = func(c int) {
		if c == len(comps) {
			out = append(out, append([]int(nil), v...))
			return
		}
		for x := 0; x <= need[c]; x++ {
			v[c] = x
			if x > 0 && !refNodeFits(n, comps, v) {
				break
			}
			walk(c + 1)
		}
		v[c] = 0
	}
	walk(0)
	return out
}

// refNodeFits reports whether v[c] replicas of every component c fit on n.
func refNodeFits(n refNode, comps []refComponent, v []int) bool {
	var pods, cpu, mem, vg, vm, vc int64
	var items []refComponent
	for c, x := range v {
		cp := comps[c]
		if x > 0 && cp.onlyZoneA && !n.zoneA {
			return false
		}
		pods += int64(x)
		cpu += int64(x) * cp.milliCPU
		mem += int64(x) * cp.memory
		vg += int64(x * cp.gpus)
		vm += int64(x*cp.gpus) * cp.memPerGPU
		vc += int64(x * cp.gpus * cp.coresPerGPU)
		if cp.gpus > 0 {
			for range x {
				items = append(items, cp)
			}
		}
	}
	// Prior pods may have over-committed a node (their requests are not
	// checked); what is free is then nothing, which limits only demands.
	if pods > max(n.pods, 0) || cpu > max(n.milliCPU, 0) || mem > max(n.memory, 0) ||
		vg > max(n.vgpus, 0) || vm > max(n.vgpuMem, 0) || vc > max(n.vgpuCores, 0) {
		return false
	}
	gpus := append([]refGPU(nil), n.gpus...)
	failed := map[string]bool{}
	var place func(i, prevMask int) bool
	place = func(i, prevMask int) bool {
		if i == len(items) {
			return true
		}
		c := items[i]
		start := 0
		if i > 0 && items[i-1] == c {
			start = prevMask // identical replicas: non-decreasing masks
		}
		key := strconv.Itoa(i) + "|" + strconv.Itoa(start) + "|" + refGPUsKey(gpus)
		if failed[key] {
			return false
		}
		for mask := start; mask < 1<<len(gpus); mask++ {
			if refPopcount(mask) != c.gpus || !refTake(gpus, c, mask, 1) {
				continue
			}
			ok := place(i+1, mask)
			refTake(gpus, c, mask, -1)
			if ok {
				return true
			}
		}
		failed[key] = true
		return false
	}
	return place(0, 0)
}

func refGPUsKey(gpus []refGPU) string {
	var b []byte
	for _, g := range gpus {
		b = strconv.AppendInt(b, int64(g.slots), 36)
		b = append(b, '.')
		b = strconv.AppendInt(b, g.mem, 36)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(g.cores), 36)
		b = append(b, ';')
	}
	return string(b)
}

// refTake takes (sign 1) or gives back (sign -1) one replica's share of
// every GPU in mask; taking fails, changing nothing, when a GPU lacks room.
func refTake(gpus []refGPU, c refComponent, mask, sign int) bool {
	share := func(g refGPU) int64 {
		if c.memPerGPU == 0 {
			return g.memCap
		}
		return c.memPerGPU
	}
	if sign > 0 {
		for g := range gpus {
			if mask&(1<<g) != 0 && (gpus[g].slots < 1 || gpus[g].mem < share(gpus[g]) || gpus[g].cores < c.coresPerGPU) {
				return false
			}
		}
	}
	for g := range gpus {
		if mask&(1<<g) != 0 {
			gpus[g].slots -= sign
			gpus[g].mem -= int64(sign) * share(gpus[g])
			gpus[g].cores -= sign * c.coresPerGPU
		}
	}
	return true
}

func refPopcount(x int) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}
