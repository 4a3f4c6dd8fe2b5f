// Package vgpu is Tessera's model of shared GPUs and its one fit algorithm.
//
// It is pure Go with no Kubernetes imports, so that the scheduler extender
// (which places pods inside a member cluster) and the Karmada estimator
// (which tells Karmada how many replicas fit in that cluster) decide fit with
// exactly the same code: what Karmada is told fits is what the member places.
package vgpu

import (
	"fmt"
	"strconv"
	"strings"
)

// FullCores is the core capacity of one GPU: cores are percent of its SMs.
const FullCores = 100

// GPU is one physical GPU as the node agent publishes it.
type GPU struct {
	UUID  string `json:"uuid"`
	Index int    `json:"index"`
	Model string `json:"model"`
	// MemoryMiB is the schedulable memory: physical memory times the node's
	// memory scaling factor.
	MemoryMiB int64 `json:"memoryMiB"`
	// Slots is how many containers may share this GPU (the split count).
	Slots int `json:"slots"`
	// Cores is the schedulable compute share in percent, normally FullCores.
	Cores    int  `json:"cores"`
	NUMANode int  `json:"numaNode"`
	Healthy  bool `json:"healthy"`
}

// Usage is the capacity of one GPU already taken by assigned containers.
type Usage struct {
	Slots     int
	MemoryMiB int64
	Cores     int
}

// Add returns u plus o.
func (u Usage) Add(o Usage) Usage {
	return Usage{Slots: u.Slots + o.Slots, MemoryMiB: u.MemoryMiB + o.MemoryMiB, Cores: u.Cores + o.Cores}
}

// DeviceState is a GPU together with what is already used on it.
type DeviceState struct {
	GPU
	Used Usage
}

// Free is the capacity still available on the device; never negative.
func (d DeviceState) Free() Usage {
	return Usage{
		Slots:     max(d.Slots-d.Used.Slots, 0),
		MemoryMiB: max(d.MemoryMiB-d.Used.MemoryMiB, 0),
		Cores:     max(d.Cores-d.Used.Cores, 0),
	}
}

// ContainerRequest is what one container asks for, per GPU.
type ContainerRequest struct {
	Name string
	// GPUs is the number of distinct GPUs the container uses.
	GPUs int
	// MemoryMiBPerGPU is the memory share on each of its GPUs. It is ignored
	// when WholeMemory is set.
	MemoryMiBPerGPU int64
	// WholeMemory is set when the container asked for GPUs without memory: it
	// then gets the whole memory of each GPU, so only an untouched GPU fits.
	WholeMemory bool
	// MemoryPercent (1..99), when set, is the memory share as a percentage of
	// each GPU's memory (HAMi's gpumem-percentage): the share differs from GPU
	// to GPU, so it is resolved per GPU, as WholeMemory is (which is 100%).
	// MemoryMiBPerGPU is then ignored.
	MemoryPercent int
	// CoresPerGPU is the core share on each GPU; 0 means no core cap, and
	// then the container takes no core capacity.
	CoresPerGPU int
}

// NewContainerRequest turns a container's resource totals into a per-GPU
// request: memory and cores are split evenly over its GPUs (memory rounded
// up, so that the container never gets less than it asked for). memorySet
// tells whether the memory resource was present at all.
func NewContainerRequest(name string, gpus int, memoryMiB int64, memorySet bool, cores int) (ContainerRequest, error) {
	switch {
	case gpus <= 0 && (memoryMiB != 0 || cores != 0):
		return ContainerRequest{}, fmt.Errorf("container %q asks for GPU memory or cores without any vGPU", name)
	case gpus < 0:
		return ContainerRequest{}, fmt.Errorf("container %q asks for %d vGPUs", name, gpus)
	case memoryMiB < 0 || (memorySet && memoryMiB == 0):
		return ContainerRequest{}, fmt.Errorf("container %q asks for %d MiB of GPU memory; it must be positive", name, memoryMiB)
	case cores < 0:
		return ContainerRequest{}, fmt.Errorf("container %q asks for %d%% GPU cores; it must not be negative", name, cores)
	case gpus > 0 && cores > gpus*FullCores:
		return ContainerRequest{}, fmt.Errorf("container %q asks for %d%% cores over %d GPUs: more than %d%% per GPU", name, cores, gpus, FullCores)
	}
	req := ContainerRequest{Name: name, GPUs: gpus, WholeMemory: gpus > 0 && !memorySet}
	if gpus > 0 {
		req.MemoryMiBPerGPU = ceilDiv(memoryMiB, int64(gpus))
		req.CoresPerGPU = int(ceilDiv(int64(cores), int64(gpus)))
	}
	return req, nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// Demand is what a container takes from one particular GPU.
func (c ContainerRequest) Demand(g GPU) Usage {
	return demandOf(c).usage(g.MemoryMiB)
}

// PercentOf is a percentage of a GPU's memory in MiB, rounded down as HAMi
// rounds it, so that a pod moved from HAMi gets the very limit it had there.
func PercentOf(memoryMiB int64, percent int) int64 { return memoryMiB * int64(percent) / 100 }

// Policy orders candidate GPUs or nodes.
type Policy string

const (
	// Binpack fills the most-used GPUs (or nodes) first, keeping whole GPUs free.
	Binpack Policy = "binpack"
	// Spread prefers the least-used GPUs (or nodes), spreading interference.
	Spread Policy = "spread"
)

// ParsePolicy accepts "binpack" or "spread"; empty means binpack.
func ParsePolicy(s string) (Policy, error) {
	switch Policy(strings.ToLower(strings.TrimSpace(s))) {
	case "", Binpack:
		return Binpack, nil
	case Spread:
		return Spread, nil
	}
	return "", fmt.Errorf("unknown policy %q: want %q or %q", s, Binpack, Spread)
}

// Selector restricts which GPUs a pod may use. Models match as
// case-insensitive substrings of the GPU's model name ("A100" matches
// "NVIDIA A100-SXM4-80GB"), UUIDs match exactly. Empty lists do not restrict.
type Selector struct {
	IncludeModels []string
	ExcludeModels []string
	IncludeUUIDs  []string
	ExcludeUUIDs  []string
}

// PodRequest is everything the fit algorithm needs to know about a pod.
type PodRequest struct {
	// Containers lists the containers that ask for GPUs, in pod order.
	Containers []ContainerRequest
	Selector   Selector
	// GPUPolicy chooses among GPUs on a node.
	GPUPolicy Policy
}

// DeviceGrant is one GPU given to one container, with its share of it.
type DeviceGrant struct {
	UUID      string
	MemoryMiB int64
	Cores     int
}

// ContainerPlacement is the GPUs chosen for one container, in the order the
// container will see them (CUDA ordinals 0..n-1).
type ContainerPlacement struct {
	Name    string
	Devices []DeviceGrant
}

// Placement is a pod's containers placed on one node's GPUs.
type Placement struct {
	Containers []ContainerPlacement
}

// SlotSeparator joins a GPU UUID and a slot number in a slot's device ID.
const SlotSeparator = "::"

// SlotID names slot n of a GPU as the device plugin advertises it to the
// kubelet, for example "GPU-8c1e...::3".
func SlotID(uuid string, n int) string { return uuid + SlotSeparator + strconv.Itoa(n) }

// ParseSlotID splits a slot ID into its GPU UUID and slot number.
func ParseSlotID(id string) (uuid string, n int, err error) {
	i := strings.LastIndex(id, SlotSeparator)
	if i <= 0 {
		return "", 0, fmt.Errorf("slot ID %q is not of the form <gpu-uuid>%s<n>", id, SlotSeparator)
	}
	n, err = strconv.Atoi(id[i+len(SlotSeparator):])
	if err != nil || n < 0 {
		return "", 0, fmt.Errorf("slot ID %q has no valid slot number", id)
	}
	return id[:i], n, nil
}
