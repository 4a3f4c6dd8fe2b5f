// Package testcluster builds member clusters (Nodes with a GPU inventory,
// Pods with GPU assignments) for the estimator's tests and benchmarks.
package testcluster

import (
	"fmt"
	"math/rand/v2"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Model is the GPU model the generated nodes have unless a spec says
// otherwise.
const Model = "NVIDIA A100-SXM4-80GB"

// GPUMemoryMiB is the memory of a generated GPU.
const GPUMemoryMiB = 81920

// GPU returns a healthy GPU of the default model with 10 slots.
func GPU(node string, index int) vgpu.GPU {
	return vgpu.GPU{
		UUID: fmt.Sprintf("GPU-%s-%d", node, index), Index: index, Model: Model,
		MemoryMiB: GPUMemoryMiB, Slots: 10, Cores: vgpu.FullCores, Healthy: true,
	}
}

// NodeSpec describes one node.
type NodeSpec struct {
	Name   string
	Labels map[string]string
	Taints []corev1.Taint
	// MilliCPU, MemoryBytes and Pods are the node's allocatable.
	MilliCPU, MemoryBytes, Pods int64
	GPUs                        []vgpu.GPU
	// RawInventory, when set, replaces the encoded inventory annotation.
	RawInventory string
}

// Node builds the Node object: allocatable with Tessera's three resources
// as the node agent publishes them (sums over healthy GPUs), and the
// inventory annotation.
func Node(spec NodeSpec) *corev1.Node {
	var slots, mem, cores int64
	for _, g := range spec.GPUs {
		if g.Healthy {
			slots += int64(g.Slots)
			mem += g.MemoryMiB
			cores += int64(g.Cores)
		}
	}
	names := config.Default().Resources
	alloc := corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewMilliQuantity(spec.MilliCPU, resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(spec.MemoryBytes, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(spec.Pods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: spec.Labels, Annotations: map[string]string{}},
		Spec:       corev1.NodeSpec{Taints: spec.Taints},
		Status:     corev1.NodeStatus{Allocatable: alloc, Capacity: alloc},
	}
	if len(spec.GPUs) > 0 {
		alloc[corev1.ResourceName(names.VGPU)] = *resource.NewQuantity(slots, resource.DecimalSI)
		alloc[corev1.ResourceName(names.Memory)] = *resource.NewQuantity(mem, resource.DecimalSI)
		alloc[corev1.ResourceName(names.Cores)] = *resource.NewQuantity(cores, resource.DecimalSI)
		raw, err := annotations.EncodeInventory(annotations.Inventory{GPUs: spec.GPUs})
		if err != nil {
			panic(fmt.Sprintf("encode inventory of test node %s: %v", spec.Name, err)) // test data is built by hand
		}
		node.Annotations[annotations.DefaultKeys().Inventory] = raw
	}
	if spec.RawInventory != "" {
		node.Annotations[annotations.DefaultKeys().Inventory] = spec.RawInventory
	}
	return node
}

// Share is one container's share of one GPU.
type Share struct {
	GPU       vgpu.GPU
	MemoryMiB int64
	Cores     int
}

// GPUPod builds a running pod bound to node whose single container holds
// the given shares (one per GPU), with matching resource requests and the
// assignment annotation the extender would have written. milliCPU and
// memoryBytes are its ordinary requests.
func GPUPod(name, node string, milliCPU, memoryBytes int64, shares ...Share) *corev1.Pod {
	pod := Pod(name, node, milliCPU, memoryBytes)
	if len(shares) == 0 {
		return pod
	}
	names := config.Default().Resources
	var mem int64
	var cores int
	ca := annotations.ContainerAssignment{Name: "main"}
	for i, s := range shares {
		mem += s.MemoryMiB
		cores += s.Cores
		ca.Devices = append(ca.Devices, annotations.AssignedDevice{
			UUID: s.GPU.UUID, SlotID: vgpu.SlotID(s.GPU.UUID, i), MemoryMiB: s.MemoryMiB, Cores: s.Cores,
		})
	}
	raw, err := annotations.EncodeAssignment(annotations.Assignment{Node: node, Containers: []annotations.ContainerAssignment{ca}})
	if err != nil {
		panic(fmt.Sprintf("encode assignment of test pod %s: %v", name, err))
	}
	pod.Annotations[annotations.DefaultKeys().Assignment] = raw
	requests := pod.Spec.Containers[0].Resources.Requests
	requests[corev1.ResourceName(names.VGPU)] = *resource.NewQuantity(int64(len(shares)), resource.DecimalSI)
	requests[corev1.ResourceName(names.Memory)] = *resource.NewQuantity(mem, resource.DecimalSI)
	if cores > 0 {
		requests[corev1.ResourceName(names.Cores)] = *resource.NewQuantity(int64(cores), resource.DecimalSI)
	}
	return pod
}

// Pod builds a running pod bound to node with ordinary requests only.
func Pod(name, node string, milliCPU, memoryBytes int64) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID("uid-" + name), Annotations: map[string]string{}},
		Spec: corev1.PodSpec{
			NodeName: node,
			Containers: []corev1.Container{{Name: "main", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU:    *resource.NewMilliQuantity(milliCPU, resource.DecimalSI),
				corev1.ResourceMemory: *resource.NewQuantity(memoryBytes, resource.BinarySI),
			}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// Fragmented generates a cluster of n nodes with gpus GPUs each and about
// podsPerNode GPU pods on every node, each taking a random share (a few
// GiB to most of a GPU, sometimes two GPUs, sometimes a core cap), so that
// free capacity is scattered unevenly over the GPUs. Nodes get a "zone"
// label cycling over zones and 64 CPUs, 512 GiB, 110 pods. The same seed
// gives the same cluster.
func Fragmented(seed uint64, n, gpus, podsPerNode int, zones []string) ([]*corev1.Node, []*corev1.Pod) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	nodes := make([]*corev1.Node, 0, n)
	pods := make([]*corev1.Pod, 0, n*podsPerNode)
	for i := range n {
		name := "node-" + strconv.Itoa(i)
		spec := NodeSpec{Name: name, MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110}
		if len(zones) > 0 {
			spec.Labels = map[string]string{"zone": zones[i%len(zones)]}
		}
		for g := range gpus {
			spec.GPUs = append(spec.GPUs, GPU(name, g))
		}
		nodes = append(nodes, Node(spec))
		free := make([]vgpu.Usage, gpus)
		for g := range free {
			free[g] = vgpu.Usage{Slots: 10, MemoryMiB: GPUMemoryMiB, Cores: vgpu.FullCores}
		}
		for p := range podsPerNode {
			width := 1
			if rng.IntN(5) == 0 {
				width = 2
			}
			mem := int64(1+rng.IntN(16)) * 4096 // 4 GiB to 64 GiB per GPU
			cores := 0
			if rng.IntN(2) == 0 {
				cores = 10 * (1 + rng.IntN(6))
			}
			var shares []Share
			for _, g := range rng.Perm(gpus) {
				if len(shares) == width {
					break
				}
				if free[g].Slots > 0 && free[g].MemoryMiB >= mem && free[g].Cores >= cores {
					shares = append(shares, Share{GPU: spec.GPUs[g], MemoryMiB: mem, Cores: cores})
				}
			}
			if len(shares) < width {
				continue // this node is full for that shape
			}
			for _, s := range shares {
				f := &free[s.GPU.Index]
				f.Slots, f.MemoryMiB, f.Cores = f.Slots-1, f.MemoryMiB-s.MemoryMiB, f.Cores-s.Cores
			}
			pods = append(pods, GPUPod(fmt.Sprintf("%s-pod-%d", name, p), name, 500, 2<<30, shares...))
		}
	}
	return nodes, pods
}
