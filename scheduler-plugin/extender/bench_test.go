package extender

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

const (
	benchNodes       = 1000
	benchGPUsPerNode = 8
)

// benchCluster is benchNodes nodes of benchGPUsPerNode 80 GiB GPUs with
// half of every GPU in use (5 of 10 slots, 40 GiB, 50% cores), taken by
// five 8-GPU pods per node.
func benchCluster(b *testing.B) ([]runtime.Object, []string) {
	objs := make([]runtime.Object, 0, benchNodes*6)
	nodeNames := make([]string, benchNodes)
	for n := range benchNodes {
		name := fmt.Sprintf("node-%04d", n)
		nodeNames[n] = name
		gpus := testGPUs(name, benchGPUsPerNode, a100, 80*gib, 10)
		objs = append(objs, gpuNode(b, name, gpus))
		for p := range 5 {
			devs := make([]annotations.AssignedDevice, len(gpus))
			for i, g := range gpus {
				devs[i] = device(g.UUID, p, 8*gib, 10)
			}
			objs = append(objs, assignedPod(b, fmt.Sprintf("%s-used-%d", name, p), name, devs...))
		}
	}
	return objs, nodeNames
}

// BenchmarkFilterAndBind measures the extender's decisions for a stream of
// 1-GPU pods (8 GiB, 10% cores) on 1,000 nodes of 8 GPUs, half in use: a
// filter over every node, then a bind (GPU and slot choice, annotation
// patch, Binding) against a fake clientset, on the node kube-scheduler
// would take from the passing ones. Reported as pods/s.
func BenchmarkFilterAndBind(b *testing.B) {
	e, pods, nodeNames := benchExtender(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		pod := pods[i]
		res := e.Filter(b.Context(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodeNames})
		if res.Error != "" || len(*res.NodeNames) == 0 {
			b.Fatalf("filter: %q, %d nodes pass", res.Error, len(*res.NodeNames))
		}
		passed := *res.NodeNames
		node := passed[i%len(passed)]
		if r := e.Bind(b.Context(), bindArgs(pod, node)); r.Error != "" {
			b.Fatalf("bind %s to %s: %s", pod.Name, node, r.Error)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pods/s")
}

// BenchmarkFilter is the filter alone over the same cluster.
func BenchmarkFilter(b *testing.B) {
	e, pods, nodeNames := benchExtender(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := e.Filter(b.Context(), &extenderv1.ExtenderArgs{Pod: pods[i%len(pods)], NodeNames: &nodeNames})
		if len(*res.NodeNames) != benchNodes {
			b.Fatalf("%d nodes pass, want all", len(*res.NodeNames))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "filters/s")
}

func benchExtender(b *testing.B) (*Extender, []*corev1.Pod, []string) {
	b.Helper()
	objs, nodeNames := benchCluster(b)
	pods := make([]*corev1.Pod, max(b.N, 1))
	for i := range pods {
		pods[i] = gpuPod(fmt.Sprintf("bench-%06d", i), ctr{"main", 1, 8 * gib, 10})
		objs = append(objs, pods[i])
	}
	// The simple tracker: the field-managed one of fake.NewClientset builds
	// a REST mapper on every write, which would be most of what is measured.
	client := withBindingSubresource(fake.NewSimpleClientset(objs...))
	e := startExtender(b, b.Context(), client, Options{})
	return e, pods, nodeNames
}
