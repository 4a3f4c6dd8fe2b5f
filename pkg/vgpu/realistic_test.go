package vgpu

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// realisticNode is an 8- or 16-GPU node of 80 GiB GPUs, about half of
// them partly used.
func realisticNode(rng *rand.Rand) []DeviceState {
	devices := nodeOf(8 * (1 + rng.IntN(2)))
	for i := range devices {
		if rng.IntN(2) == 0 {
			devices[i].Used = Usage{Slots: rng.IntN(10), MemoryMiB: int64(rng.IntN(81920)), Cores: rng.IntN(101)}
		}
	}
	return devices
}

// realisticMixedPod has 2-5 containers of 1-4 GPUs with different
// shares: memory in whole GiB (so shares pack tightly and exact fitting
// matters), cores in steps of 5%, sometimes whole GPUs.
func realisticMixedPod(rng *rand.Rand) PodRequest {
	var req PodRequest
	for i := range 2 + rng.IntN(4) {
		c := ctr(fmt.Sprintf("c%d", i), 1+rng.IntN(4), int64(1+rng.IntN(40))*1024, rng.IntN(21)*5)
		c.WholeMemory = rng.IntN(6) == 0
		req.Containers = append(req.Containers, c)
	}
	return req
}

// copiesOf is one pod holding r copies of every container of req, so that
// Place can be asked to place r copies at once.
func copiesOf(req PodRequest, r int) PodRequest {
	out := req
	out.Containers = nil
	for k := range r {
		for _, c := range req.Containers {
			c.Name = fmt.Sprintf("%s-%d", c.Name, k)
			out.Containers = append(out.Containers, c)
		}
	}
	return out
}

// TestExactSearchOnRealisticNodes covers nodes too large for the brute
// force: the mixed search must stay within its budget, its answer R must be
// witnessed by Place placing R copies at once (a valid placement), and
// Place must find R+1 copies impossible. Uniform pods must get the same
// answer from the closed form and from the search.
func TestExactSearchOnRealisticNodes(t *testing.T) {
	cases := 300
	if testing.Short() {
		cases = 40
	}
	rng := rand.New(rand.NewPCG(42, 1))
	for i := range cases {
		devices := realisticNode(rng)
		req := realisticMixedPod(rng)
		name := fmt.Sprintf("case %d: devices %+v request %+v", i, devices, req)
		got, exact := maxReplicas(devices, &req, searchBudget)
		if !exact {
			t.Fatalf("%s: the search ran out of budget (answer %d)", name, got)
		}
		if got > 0 {
			all := copiesOf(req, got)
			p, err := Place(devices, all)
			if err != nil {
				t.Fatalf("%s: MaxReplicas = %d but Place cannot place that many: %v", name, got, err)
			}
			checkPlacement(t, name, devices, all, p)
		}
		var unfit *Unfit
		if _, err := Place(devices, copiesOf(req, got+1)); !errors.As(err, &unfit) || unfit.GaveUp {
			t.Fatalf("%s: MaxReplicas = %d but Place of one more copy gives %v", name, got, err)
		}

		uniform := req
		uniform.Containers = append([]ContainerRequest(nil), req.Containers...)
		for j := range uniform.Containers {
			c := &uniform.Containers[j]
			c.MemoryMiBPerGPU, c.CoresPerGPU, c.WholeMemory = req.Containers[0].MemoryMiBPerGPU, req.Containers[0].CoresPerGPU, req.Containers[0].WholeMemory
		}
		closed := MaxReplicas(devices, uniform)
		if searched, exact := mixedMax(devices, &uniform, searchBudget); searched != closed || !exact {
			t.Fatalf("%s: uniform pod: closed form %d, search %d (exact %v)", name, closed, searched, exact)
		}
	}
}
