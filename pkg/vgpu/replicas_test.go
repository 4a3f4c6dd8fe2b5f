package vgpu

import "testing"

func TestMaxReplicas(t *testing.T) {
	// k is the number of 1000 MiB shares each GPU can host.
	withShares := func(k ...int) []DeviceState {
		out := make([]DeviceState, len(k))
		for i, n := range k {
			out[i] = dev(i, memory(int64(n)*1000))
		}
		return out
	}
	tests := []struct {
		name    string
		devices []DeviceState
		req     PodRequest
		want    int
	}{
		{"a pod without GPU containers is unlimited", nil, pod(Binpack, ContainerRequest{Name: "app"}), Unlimited},
		{"an invalid request fits nowhere", nodeOf(2), pod(Binpack, ctr("c", 1, -5, 0)), 0},
		{"no GPUs, no copies", nil, pod(Binpack, ctr("c", 1, 1000, 0)), 0},
		{"slots bound a small request", nodeOf(8), pod(Binpack, ctr("c", 1, 1000, 0)), 80},
		{"memory bounds a large request", nodeOf(8), pod(Binpack, ctr("c", 1, 40000, 0)), 16},
		{"cores bound a request with a core share", nodeOf(2), pod(Binpack, ctr("c", 1, 1000, 30)), 6},
		{"cores 0 is no cap", nodeOf(2, used(0, 0, 100)), pod(Binpack, ctr("c", 1, 1000, 0)), 20},
		{"unhealthy GPUs host nothing", []DeviceState{dev(0), dev(1, unhealthy)}, pod(Binpack, ctr("c", 1, 40960, 0)), 2},
		{"the selector limits the GPUs", []DeviceState{dev(0), dev(1, model("Tesla T4"))}, PodRequest{Containers: []ContainerRequest{ctr("c", 1, 40960, 0)}, Selector: Selector{ExcludeModels: []string{"T4"}}}, 2},
		{"whole GPUs need untouched memory", []DeviceState{dev(0), dev(1, used(1, 1, 0)), dev(2)}, pod(Binpack, wholeCtr("c", 1, 0)), 2},
		{"whole GPUs two at a time", nodeOf(5), pod(Binpack, wholeCtr("c", 2, 0)), 2},
		// 8 shares in all, but a 2-GPU pod uses GPU-0 at most once per
		// copy: 3 copies, not 8/2 = 4.
		{"fragmentation: distinct GPUs per copy", withShares(5, 1, 1, 1), pod(Binpack, ctr("c", 2, 1000, 0)), 3},
		{"fragmentation: one GPU cannot host a 2-GPU pod", withShares(7), pod(Binpack, ctr("c", 2, 1000, 0)), 0},
		// Containers of 2 and 1 GPUs with the same share: 3 shares per copy
		// on 6 shares over 3 GPUs.
		{"uniform containers of different sizes", withShares(2, 2, 2), pod(Binpack, ctr("a", 2, 1000, 0), ctr("b", 1, 1000, 0)), 2},
		// 8 shares and 4 per copy, but two 3-GPU containers need two
		// shares on each of three GPUs, and only GPU-0 has more than one.
		{"uniform containers whose sizes need Gale-Ryser", withShares(6, 1, 1), pod(Binpack, ctr("a", 3, 1000, 0), ctr("b", 1, 1000, 0)), 1},
		// Each copy takes one untouched GPU whole and 1000 MiB elsewhere.
		{"mixed: whole GPU plus a share", nodeOf(4), pod(Binpack, wholeCtr("w", 1, 0), ctr("s", 1, 1000, 0)), 3},
		{"mixed: memory and cores trade off", withShares(4, 4), pod(Binpack, ctr("mem", 1, 2000, 0), ctr("cpu", 1, 1000, 50)), 2},
		{"mixed: nothing fits", withShares(1), pod(Binpack, ctr("a", 1, 1000, 0), ctr("b", 1, 500, 0)), 0},
		{"huge capacities are capped at Unlimited", []DeviceState{dev(0, slots(1<<40), memory(1<<50)), dev(1, slots(1<<40), memory(1<<50))}, pod(Binpack, ctr("c", 1, 1, 0)), Unlimited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxReplicas(tt.devices, tt.req); got != tt.want {
				t.Errorf("MaxReplicas = %d, want %d", got, tt.want)
			}
			if tt.req.Validate() != nil {
				return
			}
			if got, exact := mixedMax(tt.devices, &tt.req, searchBudget); got != tt.want || !exact {
				t.Errorf("the exact search answers %d (exact %v), want %d", got, exact, tt.want)
			}
		})
	}
}

// TestMaxReplicasBudgetGivesALowerBound shows the documented fallback: with
// no search budget the mixed search proves nothing, and the answer is the
// greedy lower bound, flagged as inexact, never a guess above it.
func TestMaxReplicasBudgetGivesALowerBound(t *testing.T) {
	// Each copy takes one untouched GPU whole and 1000 MiB elsewhere: the
	// relaxations allow 4 copies, 3 fit.
	req := pod(Binpack, wholeCtr("w", 1, 0), ctr("s", 1, 1000, 0))
	if n, exact := maxReplicas(nodeOf(4), &req, searchBudget); n != 3 || !exact {
		t.Fatalf("with budget: %d (exact %v), want 3 (exact)", n, exact)
	}
	if n, exact := maxReplicas(nodeOf(4), &req, 0); n != 3 || exact {
		t.Errorf("without budget: %d (exact %v), want 3 (inexact)", n, exact)
	}
	// Here the greedy lower bound is not the maximum: binpack's greedy
	// choice puts a on GPU-1 and GPU-2 and then b has nowhere to go.
	corner := pod(Binpack, ctr("a", 2, 1000, 0), ctr("b", 2, 1000, 10))
	devices := []DeviceState{dev(0, memory(2000)), dev(1, memory(1000)), dev(2, memory(1000))}
	if n, exact := maxReplicas(devices, &corner, searchBudget); n != 1 || !exact {
		t.Fatalf("with budget: %d (exact %v), want 1 (exact)", n, exact)
	}
	if n, exact := maxReplicas(devices, &corner, 0); n != 0 || exact {
		t.Errorf("without budget: %d (exact %v), want 0 (inexact)", n, exact)
	}
	if _, err := Place(devices, corner); err != nil {
		t.Errorf("Place with the full budget: %v", err)
	}
}

func TestMaxReplicasUniformDoesNotAllocate(t *testing.T) {
	devices := benchNode()
	for _, req := range []PodRequest{benchOneGPU, benchTwoGPU} {
		allocs := testing.AllocsPerRun(100, func() { MaxReplicas(devices, req) })
		if allocs != 0 {
			t.Errorf("MaxReplicas(%+v) allocates %v times", req, allocs)
		}
	}
}
