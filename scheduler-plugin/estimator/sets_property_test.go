package estimator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// countingCounter is a Counter the test can read.
type countingCounter struct{ n atomic.Int64 }

func (c *countingCounter) Inc() { c.n.Add(1) }

// setCase is one random small cluster and component set, both as
// Kubernetes objects (for the plugin) and as plain numbers (for refFits).
type setCase struct {
	cluster    cluster
	components []*pb.Component
	refNodes   []refNode
	refComps   []refComponent
}

var gpuMemories = []int64{16384, 24576, 40960, 81920}

// randomSetCase builds 1-4 nodes of 1-8 GPUs (a few slots each, some
// unhealthy, random prior use, few pods and CPUs) and 1-3 components of 1-3
// replicas: GPU components of 1-2 vGPUs with 8-40 GiB per GPU (sometimes
// whole GPUs, sometimes a core cap) and CPU-only components, some limited
// to one zone.
func randomSetCase(rng *rand.Rand, id int) setCase {
	var sc setCase
	for ni := range 1 + rng.IntN(4) {
		name := fmt.Sprintf("c%d-n%d", id, ni)
		zoneA := rng.IntN(2) == 0
		zone := map[string]string{"zone": "b"}
		if zoneA {
			zone["zone"] = "a"
		}
		spec := tc.NodeSpec{Name: name, Labels: zone, MilliCPU: int64(2+rng.IntN(15)) * 1000, MemoryBytes: 64 << 30, Pods: int64(2 + rng.IntN(10))}
		rn := refNode{zoneA: zoneA, pods: spec.Pods, milliCPU: spec.MilliCPU, memory: spec.MemoryBytes}
		var pods []*corev1.Pod
		for g := range 1 + rng.IntN(8) {
			gpu := tc.GPU(name, g)
			gpu.MemoryMiB = gpuMemories[rng.IntN(len(gpuMemories))]
			gpu.Slots = 1 + rng.IntN(4)
			gpu.Healthy = rng.IntN(20) != 0
			spec.GPUs = append(spec.GPUs, gpu)
			if !gpu.Healthy {
				continue
			}
			rg := refGPU{slots: gpu.Slots, mem: gpu.MemoryMiB, memCap: gpu.MemoryMiB, cores: vgpu.FullCores}
			rn.vgpus += int64(gpu.Slots)
			rn.vgpuMem += gpu.MemoryMiB
			rn.vgpuCores += vgpu.FullCores
			if rng.IntN(2) == 0 && int64(len(pods)) < spec.Pods {
				mem := int64(1+rng.IntN(int(gpu.MemoryMiB/4096))) * 4096 / 2
				cores := 0
				if rng.IntN(3) == 0 {
					cores = 10 * (1 + rng.IntN(8))
				}
				pods = append(pods, tc.GPUPod(fmt.Sprintf("%s-used-%d", name, g), name, 500, 1<<30,
					tc.Share{GPU: gpu, MemoryMiB: mem, Cores: cores}))
				rg.slots--
				rg.mem -= mem
				rg.cores -= cores
				rn.pods--
				rn.milliCPU -= 500
				rn.memory -= 1 << 30
				rn.vgpus--
				rn.vgpuMem -= mem
				rn.vgpuCores -= int64(cores)
			}
			rn.gpus = append(rn.gpus, rg)
		}
		sc.cluster.nodes = append(sc.cluster.nodes, tc.Node(spec))
		sc.cluster.pods = append(sc.cluster.pods, pods...)
		sc.refNodes = append(sc.refNodes, rn)
	}
	for ci := range 1 + rng.IntN(3) {
		rc := refComponent{replicas: 1 + rng.IntN(3), memory: 1 << 30}
		rl := corev1.ResourceList{corev1.ResourceMemory: *resource.NewQuantity(rc.memory, resource.BinarySI)}
		if ci == 0 || rng.IntN(3) != 0 { // at least one GPU component
			rc.gpus = 1 + rng.IntN(2)
			rc.milliCPU = int64(rng.IntN(3)) * 500
			rl[resVGPU] = *resource.NewQuantity(int64(rc.gpus), resource.DecimalSI)
			if rng.IntN(10) != 0 {
				rc.memPerGPU = int64(1+rng.IntN(5)) * 8192 // 8-40 GiB
				rl[resMemory] = *resource.NewQuantity(int64(rc.gpus)*rc.memPerGPU, resource.DecimalSI)
			}
			if rng.IntN(3) == 0 {
				rc.coresPerGPU = 10 * (1 + rng.IntN(6))
				rl[resCores] = *resource.NewQuantity(int64(rc.gpus*rc.coresPerGPU), resource.DecimalSI)
			}
		} else {
			rc.milliCPU = int64(1+rng.IntN(4)) * 1000
		}
		if rc.milliCPU > 0 {
			rl[corev1.ResourceCPU] = *resource.NewMilliQuantity(rc.milliCPU, resource.DecimalSI)
		}
		var claim *pb.NodeClaim
		if rng.IntN(5) == 0 {
			rc.onlyZoneA = true
			claim = &pb.NodeClaim{NodeSelector: map[string]string{"zone": "a"}}
		}
		sc.refComps = append(sc.refComps, rc)
		sc.components = append(sc.components, &pb.Component{
			Name: fmt.Sprintf("comp%d", ci), Replicas: int32(rc.replicas),
			ReplicaRequirements: (&pb.ComponentReplicaRequirements{NodeClaim: claim}).MustSetResourceRequest(rl),
		})
	}
	return sc
}

// TestComponentSetsMatchExhaustivePacker checks EstimateComponents against
// refFits on random small fragmented clusters: never above what fits (k
// sets must fit), never below it unless the search budget bound (k+1 sets
// must not fit). TESSERA_SET_CASES raises the count (default 20,000).
func TestComponentSetsMatchExhaustivePacker(t *testing.T) {
	cases := 20000
	if v, err := strconv.Atoi(os.Getenv("TESSERA_SET_CASES")); err == nil && v > 0 {
		cases = v
	}
	seed := uint64(18)
	if v, err := strconv.ParseUint(os.Getenv("TESSERA_SET_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15))
	var above, below, budgetBound, nonZero, multi int
	for id := range cases {
		sc := randomSetCase(rng, id)
		p, snapshot := setup(t, sc.cluster)
		counter := &countingCounter{}
		p.budgetCounter = counter
		got, ret := p.EstimateComponents(context.Background(), framework.ComponentEstimationContext{Snapshot: snapshot, Components: sc.components})
		if ret.IsFailed() {
			t.Fatalf("case %d: %v", id, ret.Reasons())
		}
		if counter.n.Load() > 0 {
			budgetBound++
		}
		k := int(got)
		if k > 0 {
			nonZero++
		}
		if len(sc.components) > 1 {
			multi++
		}
		if k > 0 && !refFits(sc.refNodes, sc.refComps, k) {
			above++
			if above <= 5 {
				t.Errorf("case %d: answered %d sets, which do not fit: %+v %+v", id, k, sc.refNodes, sc.refComps)
			}
		}
		if counter.n.Load() == 0 && refFits(sc.refNodes, sc.refComps, k+1) {
			below++
			if below <= 5 {
				t.Errorf("case %d: answered %d sets, but %d fit: %+v %+v", id, k, k+1, sc.refNodes, sc.refComps)
			}
		}
	}
	t.Logf("%d clusters (%d with several components, %d with a non-zero answer): %d above, %d below, %d budget-bound",
		cases, multi, nonZero, above, below, budgetBound)
	if budgetBound > 0 {
		t.Errorf("%d answers hit the search budget; want 0 on this population", budgetBound)
	}
}
