package extender

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

var testKeys = annotations.DefaultKeys()

const gib = 1024 // MiB

// testGPUs returns n healthy GPUs of one model for a node, named by node.
func testGPUs(node string, n int, model string, memMiB int64, slots int) []vgpu.GPU {
	gpus := make([]vgpu.GPU, n)
	for i := range gpus {
		gpus[i] = vgpu.GPU{
			UUID: fmt.Sprintf("GPU-%s-%d", node, i), Index: i, Model: model,
			MemoryMiB: memMiB, Slots: slots, Cores: vgpu.FullCores, Healthy: true,
		}
	}
	return gpus
}

// gpuNode is a Node as the node agent publishes it: the inventory
// annotation and the three extended resources.
func gpuNode(tb testing.TB, name string, gpus []vgpu.GPU) *corev1.Node {
	tb.Helper()
	raw, err := annotations.EncodeInventory(annotations.Inventory{GPUs: gpus})
	if err != nil {
		tb.Fatalf("encode inventory: %v", err)
	}
	var mem int64
	var slots int
	for _, g := range gpus {
		mem += g.MemoryMiB
		slots += g.Slots
	}
	res := corev1.ResourceList{
		"tessera.io/vgpu":        *resource.NewQuantity(int64(slots), resource.DecimalSI),
		"tessera.io/vgpu-memory": *resource.NewQuantity(mem, resource.DecimalSI),
		"tessera.io/vgpu-cores":  *resource.NewQuantity(int64(len(gpus)*vgpu.FullCores), resource.DecimalSI),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{testKeys.Inventory: raw}},
		Status:     corev1.NodeStatus{Capacity: res, Allocatable: res},
	}
}

// ctr is one container's Tessera request; a negative field is left out.
type ctr struct {
	name            string
	gpus, mem, core int64
}

// gpuPod is a pending pod whose containers request Tessera resources.
func gpuPod(name string, containers ...ctr) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: name, UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.Now(), Annotations: map[string]string{},
	}}
	for _, c := range containers {
		rl := corev1.ResourceList{}
		for _, q := range []struct {
			name string
			v    int64
		}{{"tessera.io/vgpu", c.gpus}, {"tessera.io/vgpu-memory", c.mem}, {"tessera.io/vgpu-cores", c.core}} {
			if q.v >= 0 {
				rl[corev1.ResourceName(q.name)] = *resource.NewQuantity(q.v, resource.DecimalSI)
			}
		}
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name: c.name, Image: "cuda", Resources: corev1.ResourceRequirements{Limits: rl, Requests: rl},
		})
	}
	return pod
}

// withAnnotations sets annotations on a pod and returns it.
func withAnnotations(pod *corev1.Pod, kv ...string) *corev1.Pod {
	for i := 0; i+1 < len(kv); i += 2 {
		pod.Annotations[kv[i]] = kv[i+1]
	}
	return pod
}

// assignedPod is a pod already bound to node with the given devices
// (uuid, slot, memory, cores) for its one container "main".
func assignedPod(tb testing.TB, name, node string, devices ...annotations.AssignedDevice) *corev1.Pod {
	tb.Helper()
	raw, err := annotations.EncodeAssignment(annotations.Assignment{Node: node, Containers: []annotations.ContainerAssignment{{Name: "main", Devices: devices}}})
	if err != nil {
		tb.Fatalf("encode assignment: %v", err)
	}
	pod := gpuPod(name, ctr{"main", int64(len(devices)), devices[0].MemoryMiB * int64(len(devices)), int64(devices[0].Cores * len(devices))})
	pod.Annotations[testKeys.Assignment] = raw
	pod.Spec.NodeName = node
	pod.Status.Phase = corev1.PodRunning
	return pod
}

func device(uuid string, slot int, mem int64, cores int) annotations.AssignedDevice {
	return annotations.AssignedDevice{UUID: uuid, SlotID: vgpu.SlotID(uuid, slot), MemoryMiB: mem, Cores: cores}
}

// fakeCluster is a fake clientset whose pods/binding behaves like the API
// server's: it sets spec.nodeName, and refuses a pod that is bound already
// or whose UID differs.
func fakeCluster(objs ...runtime.Object) *fake.Clientset {
	return withBindingSubresource(fake.NewClientset(objs...))
}

// withBindingSubresource adds the API server's pods/binding behaviour to a
// fake clientset.
func withBindingSubresource(client *fake.Clientset) *fake.Clientset {
	client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "binding" {
			return false, nil, nil
		}
		b := action.(k8stesting.CreateAction).GetObject().(*corev1.Binding)
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		obj, err := client.Tracker().Get(gvr, b.Namespace, b.Name)
		if err != nil {
			return true, nil, err
		}
		pod := obj.(*corev1.Pod).DeepCopy()
		switch {
		case b.UID != "" && b.UID != pod.UID:
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), b.Name, fmt.Errorf("UID %s does not match %s", b.UID, pod.UID))
		case pod.Spec.NodeName != "":
			return true, nil, apierrors.NewConflict(gvr.GroupResource(), b.Name, fmt.Errorf("pod is already assigned to node %q", pod.Spec.NodeName))
		}
		pod.Spec.NodeName = b.Target.Name
		return true, b, client.Tracker().Update(gvr, pod, pod.Namespace)
	})
	return client
}

// startExtender builds an extender on client and waits for its caches. It
// stops when ctx ends.
func startExtender(tb testing.TB, ctx context.Context, client *fake.Clientset, opts Options) *Extender {
	tb.Helper()
	factory := informers.NewSharedInformerFactory(client, 0)
	opts.Client, opts.Informers = client, factory
	if opts.Config.Resources.VGPU == "" {
		opts.Config = config.Default()
	}
	e, err := New(opts)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	factory.Start(ctx.Done())
	tb.Cleanup(factory.Shutdown)
	if !cache.WaitForCacheSync(ctx.Done(), e.HasSynced) {
		tb.Fatalf("caches did not sync")
	}
	return e
}

// newTestExtender starts an extender on a fake cluster holding objs.
func newTestExtender(t *testing.T, objs ...runtime.Object) (*Extender, *fake.Clientset, *record.FakeRecorder) {
	t.Helper()
	client := fakeCluster(objs...)
	rec := record.NewFakeRecorder(1000)
	e := startExtender(t, t.Context(), client, Options{Recorder: rec})
	return e, client, rec
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drainEvents returns the events recorded so far.
func drainEvents(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case ev := <-rec.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// names builds node names n0..n(k-1) with a prefix.
func names(prefix string, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}
