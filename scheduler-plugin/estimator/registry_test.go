package estimator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	frameworkplugins "github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins"
	frameworkruntime "github.com/karmada-io/karmada/pkg/estimator/server/framework/runtime"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

const resFPGA = "example.com/fpga"

// mixedCluster is n nodes unlike each other (2-64 CPUs, 4-256 GiB, 3-40
// pods, 0-8 GPUs, an FPGA count on some, taints, unschedulable ones, zones)
// with CPU pods and GPU pods on them, so that first-fit placement, the pod
// count and scalar resources all bind somewhere.
func mixedCluster(seed uint64, n int) ([]*corev1.Node, []*corev1.Pod) {
	rng := rand.New(rand.NewPCG(seed, 11))
	var nodes []*corev1.Node
	var pods []*corev1.Pod
	for i := range n {
		name := "mixed-" + strconv.Itoa(i)
		spec := tc.NodeSpec{
			Name: name, Labels: map[string]string{"zone": []string{"a", "b"}[rng.IntN(2)]},
			MilliCPU: int64(2000 + 1000*rng.IntN(63)), MemoryBytes: int64(4+rng.IntN(253)) << 30, Pods: int64(3 + rng.IntN(38)),
		}
		if rng.IntN(6) == 0 {
			spec.Taints = []corev1.Taint{{Key: "gpu", Value: "reserved", Effect: corev1.TaintEffectNoSchedule}}
		}
		for g := range rng.IntN(9) {
			spec.GPUs = append(spec.GPUs, tc.GPU(name, g))
		}
		node := tc.Node(spec)
		node.Spec.Unschedulable = rng.IntN(15) == 0
		if rng.IntN(3) == 0 {
			q := *resource.NewQuantity(int64(rng.IntN(5)), resource.DecimalSI)
			node.Status.Allocatable[resFPGA], node.Status.Capacity[resFPGA] = q, q
		}
		nodes = append(nodes, node)
		for p := range rng.IntN(int(spec.Pods)) {
			pname := fmt.Sprintf("%s-pod-%d", name, p)
			cpu, mem := int64(100*(1+rng.IntN(40))), int64(1+rng.IntN(16))<<30
			if len(spec.GPUs) > 0 && p < len(spec.GPUs) && rng.IntN(2) == 0 {
				share := tc.Share{GPU: spec.GPUs[p], MemoryMiB: int64(1+rng.IntN(20)) * 4096}
				pods = append(pods, tc.GPUPod(pname, name, cpu, mem, share))
				continue
			}
			pod := tc.Pod(pname, name, cpu, mem)
			if rng.IntN(4) == 0 {
				pod.Spec.Containers[0].Resources.Requests[resFPGA] = *resource.NewQuantity(1, resource.DecimalSI)
			}
			pods = append(pods, pod)
		}
	}
	return nodes, pods
}

// stockFramework is what the estimator ran before Tessera's plugin
// answered for noderesource: Karmada's in-tree plugins beside Tessera's
// plain one.
func stockFramework(t *testing.T, gpus GPUStateSource) framework.Framework {
	t.Helper()
	registry := frameworkplugins.NewInTreeRegistry()
	if err := registry.Register(Name, Factory(config.Default(), gpus, 2, WithoutMemo())); err != nil {
		t.Fatal(err)
	}
	fw, err := frameworkruntime.NewFramework(registry)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// outcome is an answer as the server reads it: the count and the merged
// result's kind.
func outcome(n int32, ret *framework.Result) string {
	switch {
	case ret.IsFailed():
		return "error"
	case ret.IsUnschedulable():
		return fmt.Sprintf("unschedulable %d", n)
	case ret.IsNoOperation():
		return fmt.Sprintf("no operation %d", n)
	}
	return fmt.Sprintf("success %d", n)
}

// TestRegistryMatchesStockFramework compares the framework built from
// Registry (Tessera's plugin answering for Karmada's noderesource, memoised)
// with Karmada's stock in-tree plugins beside Tessera's plain plugin, on
// unlike randomized clusters under random churn: every replica shape
// (with and without Tessera resources, nil, selectors, tolerations, scalar
// resources, pod-count bound) and component set (first-fit placement
// falling short of the exact count, nil and zero-replica components), with
// and without in-flight workloads, must get the same count and the same
// kind of result.
func TestRegistryMatchesStockFramework(t *testing.T) {
	zoneA := &pb.NodeClaim{NodeSelector: map[string]string{"zone": "a"}}
	tolerate := &pb.NodeClaim{Tolerations: []*corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}}
	notB := &pb.NodeClaim{NodeAffinity: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
		{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"b"}},
	}}}}, Tolerations: tolerate.Tolerations}
	replicas := []*pb.ReplicaRequirements{
		nil,
		{},
		replicaRequirements(quantities("cpu", "1"), nil),
		replicaRequirements(quantities("cpu", "3", "memory", "5Gi"), zoneA),
		replicaRequirements(quantities("cpu", "500m", resFPGA, "1"), tolerate),
		replicaRequirements(quantities("pods", "3", "memory", "1Gi"), notB),
		replicaRequirements(quantities("hugepages-2Mi", "1Gi"), nil),
		replicaRequirements(quantities(resVGPU, "1", resMemory, "16384", resCores, "25", "cpu", "1", "memory", "2Gi"), nil),
		replicaRequirements(quantities(resVGPU, "2", resMemory, "81920", "cpu", "4"), tolerate),
		replicaRequirements(quantities(resVGPU, "1", resMemory, "8192", resFPGA, "1"), zoneA),
		replicaRequirements(quantities(resVGPU, "1", "cpu", "8"), notB),
	}
	headA := &pb.Component{Name: "head", Replicas: 1, ReplicaRequirements: &pb.ComponentReplicaRequirements{NodeClaim: zoneA}}
	headA.ReplicaRequirements.MustSetResourceRequest(quantities(resVGPU, "1", resMemory, "16384", "cpu", "1"))
	sets := [][]*pb.Component{
		{comp("launcher", 1, quantities("cpu", "1", "memory", "2Gi")), comp("worker", 4, quantities(resVGPU, "1", resMemory, "40960", "cpu", "4"))},
		{headA, comp("worker", 2, quantities(resVGPU, "2", resMemory, "65536", "cpu", "2"))},
		{comp("small", 2, quantities("cpu", "7")), comp("big", 1, quantities("cpu", "13", "memory", "20Gi"))},
		{comp("fpga", 1, quantities(resFPGA, "1")), nil, comp("idle", 0, quantities("cpu", "1")), comp("cpu", 3, quantities("cpu", "2"))},
		{comp("wide", 1, quantities("cpu", "30")), comp("pods", 5, nil)},
		{comp("gpu", 3, quantities(resVGPU, "1", resMemory, "20480")), comp("fpga", 1, quantities(resFPGA, "2", "cpu", "1"))},
	}
	assumed := []*pb.AssumedWorkload{{Namespace: "default", Components: sets[2]}}
	ctx := context.Background()
	var stockLower, compared int
	for seed := range uint64(3) {
		nodes, pods := mixedCluster(seed, 120)
		c := newChurnClusterOf(t, seed, nodes, pods)
		registry, err := Registry(config.Default(), c.GPUs, 2)
		if err != nil {
			t.Fatal(err)
		}
		memoised, err := frameworkruntime.NewFramework(registry)
		if err != nil {
			t.Fatal(err)
		}
		stock := stockFramework(t, c.GPUs)
		var incremental *schedcache.Snapshot
		for batch := range 40 {
			for range 1 + c.Rng.IntN(8) {
				c.Change()
			}
			snapshot := c.snapshot(t, nil)
			if batch%2 == 0 {
				incremental = c.snapshot(t, incremental)
				snapshot = incremental
			}
			for i, rr := range replicas {
				estCtx := framework.ReplicaEstimationContext{Snapshot: snapshot, ReplicaRequirements: rr}
				if batch%5 == 4 {
					estCtx.AssumedWorkloads = assumed
				}
				want := outcome(stock.RunEstimateReplicasPlugins(ctx, estCtx))
				for range 2 { // computed or brought up to date, then memoised
					if got := outcome(memoised.RunEstimateReplicasPlugins(ctx, estCtx)); got != want {
						t.Fatalf("seed %d batch %d replica shape %d: %s, stock framework %s", seed, batch, i, got, want)
					}
				}
				compared++
			}
			for i, components := range sets {
				estCtx := framework.ComponentEstimationContext{Snapshot: snapshot, Components: components, Namespace: "default"}
				if batch%5 == 4 {
					estCtx.AssumedWorkloads = assumed
				}
				wantN, wantRet := stock.RunEstimateComponentsPlugins(ctx, estCtx)
				want := outcome(wantN, wantRet)
				for range 2 {
					if got := outcome(memoised.RunEstimateComponentsPlugins(ctx, estCtx)); got != want {
						t.Fatalf("seed %d batch %d set %d: %s, stock framework %s", seed, batch, i, got, want)
					}
				}
				if tessera, _ := c.plainSets(t, snapshot, estCtx); tessera > wantN {
					stockLower++
				}
				compared++
			}
		}
	}
	// The first-fit answer must be the binding one somewhere, or the sets
	// above do not test that it is computed at all.
	if stockLower == 0 {
		t.Errorf("in %d comparisons Karmada's first-fit never answered less than Tessera's plugin", compared)
	}
	t.Logf("%d answers compared; Karmada's first-fit was below Tessera's exact count in %d", compared, stockLower)
}

// plainSets is Tessera's own component-set answer on the snapshot.
func (c *churnCluster) plainSets(t *testing.T, snapshot *schedcache.Snapshot, estCtx framework.ComponentEstimationContext) (int32, *framework.Result) {
	t.Helper()
	p, err := New(config.Default(), c.GPUs, 2, WithoutMemo())
	if err != nil {
		t.Fatal(err)
	}
	estCtx.Snapshot = snapshot
	return p.EstimateComponents(context.Background(), estCtx)
}
