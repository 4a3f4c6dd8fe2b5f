package fleetweb

import (
	"errors"
	"fmt"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// xssModel is a GPU model name an attacker who controls a node's
// inventory could publish; the page must show it as text.
const xssModel = `<img src=x onerror=alert(1)>`

// xssPod is a pod name that carries markup (the API server would refuse
// it, a malicious member's proxy need not).
const xssPod = `<script>alert(2)</script>`

// testReadAt is the fixed moment of the test fleet's read.
var testReadAt = time.Date(2026, 3, 4, 10, 20, 30, 0, time.UTC)

// karmadaCluster is Karmada's Cluster object for a member of these nodes
// and pods: Ready, with the resource summary Karmada's general estimator
// reads (allocatable summed over nodes, allocated over bound pods).
func karmadaCluster(name string, nodes []*corev1.Node, pods []*corev1.Pod) *clusterv1alpha1.Cluster {
	alloc, used := corev1.ResourceList{}, corev1.ResourceList{}
	add := func(into corev1.ResourceList, rl corev1.ResourceList) {
		for k, v := range rl {
			sum := into[k]
			sum.Add(v)
			into[k] = sum
		}
	}
	for _, n := range nodes {
		add(alloc, n.Status.Allocatable)
	}
	for _, p := range pods {
		if p.Spec.NodeName == "" {
			continue
		}
		for _, c := range p.Spec.Containers {
			add(used, c.Resources.Requests)
		}
		add(used, corev1.ResourceList{corev1.ResourcePods: *resource.NewQuantity(1, resource.DecimalSI)})
	}
	return &clusterv1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       clusterv1alpha1.ClusterSpec{SyncMode: clusterv1alpha1.Push},
		Status: clusterv1alpha1.ClusterStatus{
			Conditions:      []metav1.Condition{{Type: clusterv1alpha1.ClusterConditionReady, Status: metav1.ConditionTrue}},
			ResourceSummary: &clusterv1alpha1.ResourceSummary{Allocatable: alloc, Allocated: used},
		},
	}
}

func gpuNode(name string, gpus ...vgpu.GPU) *corev1.Node {
	return testcluster.Node(testcluster.NodeSpec{Name: name, MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110, GPUs: gpus})
}

func gpus(node, model string, n int) []vgpu.GPU {
	out := make([]vgpu.GPU, n)
	for i := range out {
		out[i] = testcluster.GPU(node, i)
		if model != "" {
			out[i].Model = model
		}
	}
	return out
}

// waitingPod asks for one vGPU with memory and has no node yet.
func waitingPod(name string, memMiB int64, reason string) *corev1.Pod {
	names := config.Default().Resources
	p := testcluster.Pod(name, "", 500, 1<<30)
	rl := p.Spec.Containers[0].Resources.Requests
	rl[corev1.ResourceName(names.VGPU)] = *resource.NewQuantity(1, resource.DecimalSI)
	rl[corev1.ResourceName(names.Memory)] = *resource.NewQuantity(memMiB, resource.DecimalSI)
	p.Spec.Containers[0].Resources.Limits = rl.DeepCopy()
	p.Status = corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: reason,
	}}}
	return p
}

// testInputs is a small fleet that shows every case the page draws:
//   - alpha: 2 nodes x 4 GPUs, each GPU 70 GiB taken: much memory free,
//     none of it in a block of more than 10 GiB (fragmented);
//   - beta: whole GPUs free, a GPU model and a pod name carrying markup,
//     an unhealthy GPU, a pod waiting for GPUs;
//   - gamma: unreachable.
func testInputs() []fleet.MemberInput {
	var alphaNodes []*corev1.Node
	var alphaPods []*corev1.Pod
	for n := range 2 {
		name := fmt.Sprintf("alpha-%d", n)
		gs := gpus(name, "", 4)
		alphaNodes = append(alphaNodes, gpuNode(name, gs...))
		for i, g := range gs {
			pod := testcluster.GPUPod(fmt.Sprintf("train-%d-%d", n, i), name, 500, 1<<30, testcluster.Share{GPU: g, MemoryMiB: 70 * 1024, Cores: 50})
			pod.Namespace = "ml"
			alphaPods = append(alphaPods, pod)
		}
	}

	b0 := gpus("beta-0", xssModel, 4)
	b0[3].Healthy = false
	b1 := gpus("beta-1", "", 2)
	betaNodes := []*corev1.Node{gpuNode("beta-0", b0...), gpuNode("beta-1", b1...)}
	xss := testcluster.GPUPod(xssPod, "beta-0", 500, 1<<30, testcluster.Share{GPU: b0[0], MemoryMiB: 40 * 1024, Cores: 30})
	xss.Namespace = "team-<b>a</b>"
	small := testcluster.GPUPod("infer-1", "beta-0", 500, 1<<30, testcluster.Share{GPU: b0[0], MemoryMiB: 10 * 1024})
	small.Namespace = "serve"
	betaPods := []*corev1.Pod{xss, small, waitingPod("queued-1", 100*1024, "0/2 nodes are available: <b>Insufficient</b> tessera.io/vgpu-memory")}

	return []fleet.MemberInput{
		{Cluster: karmadaCluster("alpha", alphaNodes, alphaPods), Nodes: alphaNodes, Pods: alphaPods},
		{Cluster: karmadaCluster("beta", betaNodes, betaPods), Nodes: betaNodes, Pods: betaPods},
		{Cluster: karmadaCluster("gamma", nil, nil), Err: errors.New(`list nodes of member gamma: dial tcp 10.0.0.9:443: connect: connection refused <i>x</i>`)},
	}
}

func testState(tb testing.TB) *fleet.State {
	tb.Helper()
	return fleet.NewState(config.Default(), testReadAt, testInputs())
}

// largeInputs is a fleet of clusters x nodes x gpusPerNode GPUs, about
// three pods per node holding random shares (testcluster.Fragmented).
func largeInputs(clusters, nodes, gpusPerNode int) []fleet.MemberInput {
	out := make([]fleet.MemberInput, clusters)
	for c := range out {
		ns, ps := testcluster.Fragmented(uint64(c+1), nodes, gpusPerNode, 3, []string{"a", "b"})
		out[c] = fleet.MemberInput{Cluster: karmadaCluster(fmt.Sprintf("member-%02d", c), ns, ps), Nodes: ns, Pods: ps}
	}
	return out
}
