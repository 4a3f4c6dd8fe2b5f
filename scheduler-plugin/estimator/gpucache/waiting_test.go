package gpucache

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
)

func gpuPod(name, nodeName string, phase corev1.PodPhase) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{"tessera.io/vgpu": resource.MustParse("1"), "tessera.io/vgpu-memory": resource.MustParse("1024")},
		}}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

// TestWaitingPodsFollowsEvents drives the tracker through pod events and
// checks the count after each.
func TestWaitingPodsFollowsEvents(t *testing.T) {
	w := NewWaitingPods(config.Default())
	cpuPod := gpuPod("web", "", corev1.PodPending)
	cpuPod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"cpu": resource.MustParse("1")}
	steps := []struct {
		name  string
		apply func()
		want  int
	}{
		{"first unbound GPU pod", func() { w.handle(gpuPod("a", "", corev1.PodPending), false) }, 1},
		{"second unbound GPU pod", func() { w.handle(gpuPod("b", "", corev1.PodPending), false) }, 2},
		{"an update of a waiting pod counts once", func() { w.handle(gpuPod("a", "", corev1.PodPending), false) }, 2},
		{"a pod without GPUs does not count", func() { w.handle(cpuPod, false) }, 2},
		{"a bound pod is not waiting", func() { w.handle(gpuPod("c", "n1", corev1.PodRunning), false) }, 2},
		{"a waiting pod gets bound", func() { w.handle(gpuPod("a", "n1", corev1.PodPending), false) }, 1},
		{"a waiting pod fails", func() { w.handle(gpuPod("b", "", corev1.PodFailed), false) }, 0},
		{"a new waiting pod", func() { w.handle(gpuPod("d", "", corev1.PodPending), false) }, 1},
		{"deleted with an unknown final state", func() {
			w.handle(toolscache.DeletedFinalStateUnknown{Key: "ns/d", Obj: gpuPod("d", "", corev1.PodPending)}, true)
		}, 0},
		{"an object that is not a pod is ignored", func() { w.handle(&corev1.Node{}, false) }, 0},
		{"deleting a pod never seen", func() { w.handle(gpuPod("zz", "", corev1.PodPending), true) }, 0},
	}
	for _, s := range steps {
		s.apply()
		if got := w.Count(); got != s.want {
			t.Fatalf("after %q: Count = %d, want %d", s.name, got, s.want)
		}
	}
}
