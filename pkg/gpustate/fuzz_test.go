package gpustate

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// FuzzPodRequest feeds arbitrary annotations and quantities through
// PodRequest and RequestFromResources: they must never panic, and whatever
// they accept must satisfy the fit algorithm's invariants.
func FuzzPodRequest(f *testing.F) {
	f.Add("1", "1024", "30", "A100", "spread", "GPU-x")
	f.Add("2", "", "", "", "", "")
	f.Add("0", "0", "0", ",", "binpack", " , ")
	f.Add("-1", "1e18", "150", "\x00", "SPREAD", "a,b,,c")
	f.Add("1500m", "10Gi", "1e3", "H100", "", "")
	f.Add("9223372036854775807", "9223372036854775807", "9223372036854775807", "", "", "")
	cfg := config.Default()
	keys := annotations.DefaultKeys()
	f.Fuzz(func(t *testing.T, gpus, memory, cores, modelInclude, policy, uuidExclude string) {
		pod, limits := fuzzPod(map[string]string{resVGPU: gpus, resMemory: memory, resCores: cores},
			map[string]string{keys.GPUModelInclude: modelInclude, keys.GPUPolicy: policy, keys.GPUUUIDExclude: uuidExclude})
		if req, err := PodRequest(pod, cfg); err == nil {
			checkRequest(t, req)
		}
		if req, asks, err := RequestFromResources(limits, cfg); err == nil {
			checkRequest(t, req)
			if asks != (len(req.Containers) == 1) {
				t.Fatalf("asksForGPUs = %v with %d containers", asks, len(req.Containers))
			}
		}
	})
}

func checkRequest(t *testing.T, req vgpu.PodRequest) {
	t.Helper()
	if req.GPUPolicy != vgpu.Binpack && req.GPUPolicy != vgpu.Spread {
		t.Fatalf("accepted policy %q", req.GPUPolicy)
	}
	for _, c := range req.Containers {
		if c.GPUs <= 0 || c.GPUs > MaxGPUsPerContainer || c.MemoryMiBPerGPU < 0 ||
			c.CoresPerGPU < 0 || c.CoresPerGPU > vgpu.FullCores || (!c.WholeMemory && c.MemoryPercent == 0 && c.MemoryMiBPerGPU == 0) {
			t.Fatalf("accepted an impossible container request %+v", c)
		}
		if err := (vgpu.PodRequest{Containers: []vgpu.ContainerRequest{c}}).Validate(); err != nil {
			t.Fatalf("accepted an impossible container request %+v", c)
		}
	}
}

// FuzzNodeDevices feeds arbitrary inventory and assignment annotations
// through NodeDevicesWithPodErrors: it must never panic, an inventory it
// accepts yields one device per listed GPU, and usage never goes negative.
func FuzzNodeDevices(f *testing.F) {
	f.Add(`{"version":"v1","gpus":[{"uuid":"GPU-a","memoryMiB":1000,"slots":4,"cores":100,"healthy":true}]}`,
		`{"version":"v1","node":"n","containers":[{"name":"c","devices":[{"uuid":"GPU-a","slotID":"GPU-a::0","memoryMiB":10,"cores":5}]}]}`)
	f.Add(`{"version":"v1","gpus":[]}`, `{"version":"v1","node":"n","containers":[]}`)
	f.Add(`{`, `[]`)
	f.Add(`{"version":"v2","gpus":null}`, `{"version":"v1","node":"other","containers":null}`)
	f.Add(`{"version":"v1","gpus":[{"uuid":"GPU-a","memoryMiB":-1}]}`,
		`{"version":"v1","node":"n","containers":[{"name":"c","devices":[{"uuid":"GPU-a","slotID":"GPU-a::0","memoryMiB":9223372036854775807}]}]}`)
	keys := annotations.DefaultKeys()
	f.Fuzz(func(t *testing.T, inventory, assignment string) {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{keys.Inventory: inventory}}}
		pods := []*corev1.Pod{
			{ObjectMeta: metav1.ObjectMeta{Name: "p1", Annotations: map[string]string{keys.Assignment: assignment}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "p2", Annotations: map[string]string{keys.Assignment: assignment}}},
		}
		devices, _, err := NodeDevicesWithPodErrors(node, pods, keys)
		if err != nil {
			return
		}
		inv, decodeErr := annotations.DecodeInventory(inventory)
		if decodeErr != nil || len(devices) != len(inv.GPUs) {
			t.Fatalf("accepted inventory %q: %d devices, decode error %v", inventory, len(devices), decodeErr)
		}
		for _, d := range devices {
			if d.Used.Slots < 0 || d.Used.MemoryMiB < 0 || d.Used.Cores < 0 {
				t.Fatalf("negative usage %+v on %s", d.Used, d.UUID)
			}
		}
	})
}

// fuzzPod is a pod of one container whose limits are the quantities that
// parse among raw, with the given annotations: what the fuzzers feed the
// request codec.
func fuzzPod(raw, annotations map[string]string) (*corev1.Pod, corev1.ResourceList) {
	limits := corev1.ResourceList{}
	for name, value := range raw {
		if q, err := resource.ParseQuantity(value); err == nil {
			limits[corev1.ResourceName(name)] = q
		}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "fuzz", Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{container("c", limits, nil)}},
	}, limits
}
