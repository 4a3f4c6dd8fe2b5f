package gpustate

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestWaitsForGPUs(t *testing.T) {
	cfg := config.Default()
	keys := cfg.Keys()
	assignment, err := annotations.EncodeAssignment(annotations.Assignment{Node: "n1", Containers: []annotations.ContainerAssignment{{
		Name: "main", Devices: []annotations.AssignedDevice{{UUID: "GPU-1", SlotID: vgpu.SlotID("GPU-1", 0), MemoryMiB: 1024}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	gpu := []corev1.Container{container("main", rl(resVGPU, "1", resMemory, "1024"), nil)}
	tests := []struct {
		name        string
		nodeName    string
		phase       corev1.PodPhase
		annotations map[string]string
		containers  []corev1.Container
		want        bool
	}{
		{name: "unbound GPU pod waits", containers: gpu, phase: corev1.PodPending, want: true},
		{name: "bound GPU pod", nodeName: "n1", containers: gpu, phase: corev1.PodPending},
		{name: "assigned, not yet bound: being placed", containers: gpu, phase: corev1.PodPending,
			annotations: map[string]string{keys.Assignment: assignment}},
		{name: "undecodable assignment does not place it", containers: gpu, phase: corev1.PodPending,
			annotations: map[string]string{keys.Assignment: "{"}, want: true},
		{name: "pod without Tessera resources", phase: corev1.PodPending,
			containers: []corev1.Container{container("web", rl("cpu", "1"), nil)}},
		{name: "unreadable request never fits, so it does not wait for capacity", phase: corev1.PodPending,
			containers: []corev1.Container{container("main", rl(resMemory, "1024"), nil)}},
		{name: "failed pod", containers: gpu, phase: corev1.PodFailed},
		{name: "succeeded pod", containers: gpu, phase: corev1.PodSucceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Annotations: tt.annotations},
				Spec:       corev1.PodSpec{NodeName: tt.nodeName, Containers: tt.containers},
				Status:     corev1.PodStatus{Phase: tt.phase},
			}
			if got := WaitsForGPUs(pod, cfg); got != tt.want {
				t.Errorf("WaitsForGPUs = %t, want %t", got, tt.want)
			}
		})
	}
	if WaitsForGPUs(nil, cfg) {
		t.Error("a nil pod waits")
	}
}
