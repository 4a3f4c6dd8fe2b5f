// Package fleet is Tessera's view of every member cluster's GPUs, read
// through Karmada: per cluster, per node, per GPU, what each pod holds,
// and what would fit. It is the one data layer behind the `tessera` CLI
// (fleet, fit, pods) and its web page (dashboard).
//
// It has no model of its own: a node's GPU state comes from
// pkg/gpustate (the same code the scheduler extender and the estimator
// use), and "what fits" is answered by the estimator's own framework and
// plugin over the member's nodes and pods (see Fit).
package fleet

import (
	"time"

	"github.com/tessera-gpu/tessera/pkg/gpustate"
)

// Fleet is every member cluster's GPU state as one read found it. It is
// what `tessera fleet -o json` prints and what the page is drawn from.
type Fleet struct {
	// ReadAt is when the read that produced this state began.
	ReadAt time.Time `json:"readAt"`
	// Clusters are Karmada's member clusters, by name.
	Clusters []Cluster `json:"clusters"`
	// Totals sums every reachable cluster, per GPU model.
	Totals []ModelSummary `json:"totals"`
}

// Cluster is one member cluster. A member that could not be read is still
// here: Reachable is false, Error says why, and the data (if any) is the
// last that was read, as old as ReadAt says.
type Cluster struct {
	Name string `json:"name"`
	// Reachable is false when the member's nodes or pods could not be read.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// ReadAt is when the data shown was read; zero if never.
	ReadAt time.Time `json:"readAt,omitzero"`
	// Ready is Karmada's Ready condition of the Cluster; SyncMode is Push or Pull.
	Ready    bool   `json:"ready"`
	SyncMode string `json:"syncMode"`
	// Tessera is true when some node of the member publishes a GPU inventory.
	Tessera bool `json:"tessera"`
	// Models summarises the cluster per GPU model, by model name.
	Models []ModelSummary `json:"models"`
	// WaitingPods counts pods that ask for vGPUs and have no node yet.
	WaitingPods int    `json:"waitingPods"`
	Nodes       []Node `json:"nodes"`
	Pods        []Pod  `json:"pods"`
	// Problems name objects whose GPU data could not be read (an
	// undecodable inventory or assignment); what they claim is not counted.
	Problems []string `json:"problems,omitempty"`
}

// ModelSummary is one GPU model in one cluster, or in the whole fleet.
// It is gpustate's, so that the estimator's cluster metrics and this view
// summarise with the same code.
type ModelSummary = gpustate.ModelSummary

// Capacity is an amount free out of a total.
type Capacity = gpustate.Capacity

// Node is one node and its GPUs.
type Node struct {
	Name          string `json:"name"`
	Unschedulable bool   `json:"unschedulable,omitempty"`
	// InventoryError is set when the node's inventory does not decode; it
	// then counts as having no GPUs.
	InventoryError string `json:"inventoryError,omitempty"`
	GPUs           []GPU  `json:"gpus"`
}

// Usage is an amount of one GPU's slots, memory and cores.
type Usage struct {
	Slots     int   `json:"slots"`
	MemoryMiB int64 `json:"memoryMiB"`
	Cores     int   `json:"cores"`
}

// GPU is one physical GPU: its capacity, what is used and free, and who
// holds it.
type GPU struct {
	UUID    string `json:"uuid"`
	Index   int    `json:"index"`
	Model   string `json:"model"`
	Healthy bool   `json:"healthy"`
	// Capacity is what the node agent publishes (schedulable memory, slots,
	// cores).
	Capacity Usage `json:"capacity"`
	Used     Usage `json:"used"`
	Free     Usage `json:"free"`
	// Holders are the containers assigned to this GPU, largest first.
	Holders []Holder `json:"holders,omitempty"`
}

// Holder is one container's share of one GPU.
type Holder struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	MemoryMiB int64  `json:"memoryMiB"`
	Cores     int    `json:"cores"`
}

// Pod is one pod that asks for vGPUs.
type Pod struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Node is where the scheduler bound it, or where its assignment
	// places it; empty while it waits.
	Node  string `json:"node,omitempty"`
	Phase string `json:"phase"`
	// Waiting is true for a pod that has no node yet; Reason is the
	// scheduler's message when it has one.
	Waiting    bool           `json:"waiting,omitempty"`
	Reason     string         `json:"reason,omitempty"`
	Containers []PodContainer `json:"containers"`
}

// PodContainer is one container's vGPU request and, once assigned, its GPUs.
type PodContainer struct {
	Name string `json:"name"`
	// VGPUs, MemoryMiB and Cores are the container's totals: what its
	// assignment grants once it has one, else what it asks for. MemoryMiB
	// is 0 for a request of whole GPUs that is not assigned yet.
	VGPUs     int   `json:"vgpus"`
	MemoryMiB int64 `json:"memoryMiB"`
	// MemoryPercent is, for a request of a share of each GPU's memory
	// (HAMi's gpumem-percentage) not assigned yet, that percentage.
	MemoryPercent int `json:"memoryPercent,omitempty"`
	Cores         int `json:"cores"`
	// GPUs are the UUIDs of its GPUs, in the order the container sees them.
	GPUs []string `json:"gpus,omitempty"`
	// UsedMemoryMiB is the device memory the container's processes hold,
	// as its node agent last reported it; absent when nothing reports it.
	UsedMemoryMiB *int64 `json:"usedMemoryMiB,omitempty"`
}
