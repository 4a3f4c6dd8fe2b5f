package extender

import (
	"fmt"
	goruntime "runtime"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

const (
	benchNodes       = 1000
	benchGPUsPerNode = 8
	// benchMaxInflight bounds the binds whose pods the informer has not
	// delivered yet.
	benchMaxInflight = 32
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
// 1-GPU pods on 1,000 nodes of 8 GPUs, half in use: a filter over every
// node, then a bind (GPU and slot choice, annotation patch, Binding)
// against a fake clientset, on the node kube-scheduler would take from the
// passing ones. Reported as pods/s. In same-shape every pod asks for the
// same share (8 GiB, 10% cores), as the replicas of one workload do; in
// distinct-shapes every pod asks for a different amount of memory, so no
// verdict is ever asked twice.
func BenchmarkFilterAndBind(b *testing.B) {
	benchEachShape(b, Options{}, "pods/s", func(b *testing.B, e *Extender, nodeNames []string, pod *corev1.Pod, i int) {
		res := e.Filter(b.Context(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodeNames})
		if res.Error != "" || len(*res.NodeNames) == 0 {
			b.Fatalf("filter: %q, %d nodes pass", res.Error, len(*res.NodeNames))
		}
		passed := *res.NodeNames
		node := passed[i%len(passed)]
		if r := e.Bind(b.Context(), bindArgs(pod, node)); r.Error != "" {
			b.Fatalf("bind %s to %s: %s", pod.Name, node, r.Error)
		}
		// The fake clientset's watch holds 100 events and panics when
		// full; each bind adds two. Let the informer (the extender's own
		// work, measured too) keep up.
		for e.state.inflightCount() > benchMaxInflight {
			goruntime.Gosched()
		}
	})
}

// BenchmarkFilter is the filter alone over the same cluster. No bind
// follows, so filters do not wait for binds (BindWait off).
func BenchmarkFilter(b *testing.B) {
	benchEachShape(b, Options{BindWait: -1}, "filters/s", func(b *testing.B, e *Extender, nodeNames []string, pod *corev1.Pod, _ int) {
		res := e.Filter(b.Context(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodeNames})
		if len(*res.NodeNames) != benchNodes {
			b.Fatalf("%d nodes pass, want all", len(*res.NodeNames))
		}
	})
}

// benchEachShape runs step for pods 0..b.N-1 of each of benchShapes on a
// fresh extender, and reports the rate as unit.
func benchEachShape(b *testing.B, opts Options, unit string, step func(b *testing.B, e *Extender, nodeNames []string, pod *corev1.Pod, i int)) {
	for _, shapes := range benchShapes {
		b.Run(shapes.name, func(b *testing.B) {
			e, pods, nodeNames := benchExtender(b, opts, shapes.pod)
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuTime(b)
			for i := 0; i < b.N; i++ {
				step(b, e, nodeNames, pods[i], i)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
			// CPU time of the whole process (informers, GC, the fake API)
			// per operation: on a machine that other work shares, wall
			// time measures the neighbours too, CPU time much less.
			b.ReportMetric(float64((cpuTime(b)-cpu).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// benchShapes are the pod streams of the benchmarks: pod(i) is the i-th pod.
var benchShapes = []struct {
	name string
	pod  func(i int) *corev1.Pod
}{
	{"same-shape", func(i int) *corev1.Pod {
		return gpuPod(fmt.Sprintf("bench-%06d", i), ctr{"main", 1, 8 * gib, 10})
	}},
	// 4 GiB plus i MiB, modulo 4,096: at most 8 GiB, so the 5 free slots
	// of a GPU (40 GiB) hold any 5 of them, and a shape comes back only
	// after 4,096 others, long after a view's memo (maxFits) forgot it.
	{"distinct-shapes", func(i int) *corev1.Pod {
		return gpuPod(fmt.Sprintf("bench-%06d", i), ctr{"main", 1, 4*gib + int64(i%4096), 10})
	}},
}

func benchExtender(b *testing.B, opts Options, podAt func(i int) *corev1.Pod) (*Extender, []*corev1.Pod, []string) {
	b.Helper()
	objs, nodeNames := benchCluster(b)
	pods := make([]*corev1.Pod, max(b.N, 1))
	for i := range pods {
		pods[i] = podAt(i)
		objs = append(objs, pods[i])
	}
	// The simple tracker: the field-managed one of fake.NewClientset builds
	// a REST mapper on every write, which would be most of what is measured.
	client := withBindingSubresource(fake.NewSimpleClientset(objs...))
	e := startExtender(b, b.Context(), client, opts)
	// One filter first, so that every node's state is derived from its
	// pods before the clock starts: a running extender has done that long
	// ago, and inside the clock it would be most of what a short run
	// measures (decoding 5,000 assignments).
	warm := gpuPod("bench-warm-up", ctr{"main", 1, 1, 0})
	if res := e.Filter(b.Context(), &extenderv1.ExtenderArgs{Pod: warm, NodeNames: &nodeNames}); len(*res.NodeNames) != benchNodes {
		b.Fatalf("warm-up filter: %q, %d nodes pass", res.Error, len(*res.NodeNames))
	}
	return e, pods, nodeNames
}

// cpuTime is the user and system CPU time the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
