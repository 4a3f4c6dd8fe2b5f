package app

import (
	"fmt"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// demoContainer is one container of a demo pod with the GPUs the extender
// "chose" for it: positions in the node's GPU list and slot numbers.
type demoContainer struct {
	name      string
	gpus      []int
	slots     []int
	memoryMiB int64 // per GPU; 0 means the whole GPU (no memory request)
	cores     int   // per GPU; 0 means no core cap
}

// demoPods builds the pods as the scheduler extender leaves them at bind
// time: bound to the node, with resource requests and the assignment
// annotation. Two pods share GPU 0; a third takes two whole GPUs.
func demoPods(cfg config.Config, node string, gpus []vgpu.GPU) ([]*corev1.Pod, error) {
	specs := []struct {
		name       string
		containers []demoContainer
	}{
		{"inference-a", []demoContainer{{name: "server", gpus: []int{0}, slots: []int{0}, memoryMiB: 10240, cores: 30}}},
		{"inference-b", []demoContainer{{name: "server", gpus: []int{0}, slots: []int{1}, memoryMiB: 8192, cores: 50}}},
		{"training", []demoContainer{{name: "trainer", gpus: []int{1, 2}, slots: []int{0, 0}}}},
	}
	// Creation times a second apart: the kubelet admits, and the plugin
	// matches, oldest first.
	created := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var pods []*corev1.Pod
	for i, s := range specs {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: s.name, Namespace: "default", UID: types.UID("demo-uid-" + s.name),
				CreationTimestamp: metav1.NewTime(created.Add(time.Duration(i) * time.Second)),
			},
			Spec:   corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: corev1.PodPending},
		}
		assignment := annotations.Assignment{Node: node}
		for _, c := range s.containers {
			container, ca := demoContainerSpec(cfg, c, gpus)
			pod.Spec.Containers = append(pod.Spec.Containers, container)
			assignment.Containers = append(assignment.Containers, ca)
		}
		value, err := annotations.EncodeAssignment(assignment)
		if err != nil {
			return nil, fmt.Errorf("demo pod %s: %w", s.name, err)
		}
		pod.Annotations = map[string]string{cfg.Keys().Assignment: value}
		pods = append(pods, pod)
	}
	return pods, nil
}

// demoContainerSpec renders one container's requests and its assignment.
func demoContainerSpec(cfg config.Config, c demoContainer, gpus []vgpu.GPU) (corev1.Container, annotations.ContainerAssignment) {
	limits := corev1.ResourceList{
		corev1.ResourceName(cfg.Resources.VGPU): *resource.NewQuantity(int64(len(c.gpus)), resource.DecimalSI),
	}
	if c.memoryMiB > 0 {
		limits[corev1.ResourceName(cfg.Resources.Memory)] = *resource.NewQuantity(c.memoryMiB*int64(len(c.gpus)), resource.DecimalSI)
	}
	if c.cores > 0 {
		limits[corev1.ResourceName(cfg.Resources.Cores)] = *resource.NewQuantity(int64(c.cores*len(c.gpus)), resource.DecimalSI)
	}
	ca := annotations.ContainerAssignment{Name: c.name}
	for i, pos := range c.gpus {
		g := gpus[pos]
		mem := c.memoryMiB
		if mem == 0 {
			mem = g.MemoryMiB
		}
		ca.Devices = append(ca.Devices, annotations.AssignedDevice{
			UUID: g.UUID, SlotID: vgpu.SlotID(g.UUID, c.slots[i]), MemoryMiB: mem, Cores: c.cores,
		})
	}
	container := corev1.Container{
		Name:      c.name,
		Image:     "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04",
		Command:   []string{"sleep", strconv.Itoa(3600)},
		Resources: corev1.ResourceRequirements{Limits: limits, Requests: limits},
	}
	return container, ca
}
