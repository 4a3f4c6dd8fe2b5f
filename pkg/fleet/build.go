package fleet

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// memberObjects are what was read from one member: its nodes and its
// non-terminal pods.
type memberObjects struct {
	nodes []*corev1.Node
	pods  []*corev1.Pod
}

// memberState is one member's GPU state built from its objects, with the
// parts Fit needs beside the JSON view.
type memberState struct {
	objects memberObjects
	// devices are each node's GPUs with their usage, by node name, as
	// pkg/gpustate computes them for the extender and the estimator.
	devices map[string][]vgpu.DeviceState
	// badInventory names nodes whose inventory does not decode.
	badInventory map[string]error
	view         Cluster
	// The member's estimator over these objects, for Fit.
	staticEstimator
}

// buildMember turns a member's objects into its GPU state. It never fails:
// an undecodable inventory or assignment is a problem named in the view,
// and what it claims is not counted (as the estimator does).
func buildMember(name string, objs memberObjects, cfg config.Config) *memberState {
	keys := cfg.Keys()
	m := &memberState{
		objects:      objs,
		devices:      make(map[string][]vgpu.DeviceState, len(objs.nodes)),
		badInventory: map[string]error{},
		view:         Cluster{Name: name, Nodes: []Node{}, Pods: []Pod{}},
	}
	decoded := decodeAssignments(objs.pods, keys, &m.view.Problems)
	assigned := map[string][]gpustate.AssignedPod{}
	for _, d := range decoded {
		assigned[d.Assignment.Node] = append(assigned[d.Assignment.Node], d.AssignedPod)
	}
	perNode := make([][]vgpu.DeviceState, 0, len(objs.nodes))
	observed := map[string]int64{}
	for _, node := range objs.nodes {
		if err := addObservedUse(observed, node, keys); err != nil {
			m.view.Problems = append(m.view.Problems, err.Error())
		}
		devices, podErrs, err := gpustate.NodeDevicesAssigned(node, assigned[node.Name], keys)
		for _, pe := range podErrs {
			m.view.Problems = append(m.view.Problems, pe.Error())
		}
		view := Node{Name: node.Name, Unschedulable: node.Spec.Unschedulable, GPUs: []GPU{}}
		if err != nil {
			m.badInventory[node.Name] = err
			view.InventoryError = err.Error()
			m.view.Problems = append(m.view.Problems, err.Error())
		}
		if _, has := node.Annotations[keys.Inventory]; has {
			m.view.Tessera = true
		}
		m.devices[node.Name] = devices
		perNode = append(perNode, devices)
		view.GPUs = gpuViews(devices, assigned[node.Name])
		m.view.Nodes = append(m.view.Nodes, view)
	}
	slices.SortFunc(m.view.Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	m.view.Models = gpustate.SummarizeModels(name, perNode)
	m.view.Pods = podViews(name, objs.pods, decoded, cfg, &m.view.Problems)
	for i := range m.view.Pods {
		p := &m.view.Pods[i]
		for j := range p.Containers {
			if mib, ok := observed[p.Namespace+"/"+p.Name+"/"+p.Containers[j].Name]; ok {
				p.Containers[j].UsedMemoryMiB = &mib
			}
		}
	}
	for _, p := range m.view.Pods {
		if p.Waiting {
			m.view.WaitingPods++
		}
	}
	slices.Sort(m.view.Problems)
	m.view.Problems = slices.Compact(m.view.Problems)
	return m
}

// addObservedUse adds the node agent's usage report of a node (what each
// container's processes really hold), by namespace/pod/container.
func addObservedUse(observed map[string]int64, node *corev1.Node, keys annotations.Keys) error {
	raw, ok := node.Annotations[keys.Usage]
	if !ok {
		return nil
	}
	u, err := annotations.DecodeUsage(raw)
	if err != nil {
		return fmt.Errorf("node %s: annotation %s: %w", node.Name, keys.Usage, err)
	}
	for _, c := range u.Containers {
		observed[c.Namespace+"/"+c.Pod+"/"+c.Container] = c.MemoryUsedMiB
	}
	return nil
}

// decodedPod is a pod with its assignment decoded, once per build.
type decodedPod struct {
	gpustate.AssignedPod
	pod *corev1.Pod
}

// decodeAssignments decodes every non-terminal pod's assignment, by pod;
// an undecodable one is a problem and the pod holds nothing, as in the
// estimator's GPU cache.
func decodeAssignments(pods []*corev1.Pod, keys annotations.Keys, problems *[]string) map[*corev1.Pod]decodedPod {
	out := make(map[*corev1.Pod]decodedPod, len(pods))
	for _, pod := range pods {
		if gpustate.IsTerminal(pod) {
			continue
		}
		a, found, err := gpustate.PodAssignment(pod, keys)
		switch {
		case err != nil:
			*problems = append(*problems, fmt.Sprintf("pod %s/%s: %v", pod.Namespace, pod.Name, err))
		case found:
			out[pod] = decodedPod{AssignedPod: gpustate.AssignedPod{Name: pod.Namespace + "/" + pod.Name, Assignment: a}, pod: pod}
		}
	}
	return out
}

// gpuViews renders a node's devices with the containers that hold each.
func gpuViews(devices []vgpu.DeviceState, assigned []gpustate.AssignedPod) []GPU {
	holders := map[string][]Holder{}
	for _, ap := range assigned {
		namespace, pod, _ := strings.Cut(ap.Name, "/")
		for _, c := range ap.Assignment.Containers {
			for _, d := range c.Devices {
				holders[d.UUID] = append(holders[d.UUID], Holder{
					Namespace: namespace, Pod: pod, Container: c.Name, MemoryMiB: d.MemoryMiB, Cores: d.Cores,
				})
			}
		}
	}
	out := make([]GPU, 0, len(devices))
	for _, d := range devices {
		hs := holders[d.UUID]
		slices.SortFunc(hs, func(a, b Holder) int {
			return cmp.Or(cmp.Compare(b.MemoryMiB, a.MemoryMiB), cmp.Compare(a.Namespace, b.Namespace),
				cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container))
		})
		free := d.Free()
		out = append(out, GPU{
			UUID: d.UUID, Index: d.Index, Model: d.Model, Healthy: d.Healthy,
			Capacity: Usage{Slots: d.Slots, MemoryMiB: d.MemoryMiB, Cores: d.Cores},
			Used:     Usage{Slots: d.Used.Slots, MemoryMiB: d.Used.MemoryMiB, Cores: d.Used.Cores},
			Free:     Usage{Slots: free.Slots, MemoryMiB: free.MemoryMiB, Cores: free.Cores},
			Holders:  hs,
		})
	}
	slices.SortFunc(out, func(a, b GPU) int { return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.UUID, b.UUID)) })
	return out
}

// podViews lists the pods that ask for vGPUs or hold an assignment.
func podViews(cluster string, pods []*corev1.Pod, decoded map[*corev1.Pod]decodedPod, cfg config.Config, problems *[]string) []Pod {
	out := []Pod{}
	for _, pod := range pods {
		if gpustate.IsTerminal(pod) {
			continue
		}
		d, assigned := decoded[pod]
		p, ok, err := podView(cluster, pod, d.Assignment, assigned, cfg)
		if err != nil {
			*problems = append(*problems, err.Error())
		}
		if ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b Pod) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// podView is one pod's line: its (decoded) assignment when it has one,
// else its request. ok is false for a pod that has nothing to do with vGPUs.
func podView(cluster string, pod *corev1.Pod, a annotations.Assignment, assigned bool, cfg config.Config) (Pod, bool, error) {
	p := Pod{Cluster: cluster, Namespace: pod.Namespace, Name: pod.Name, Node: pod.Spec.NodeName, Phase: string(pod.Status.Phase)}
	if assigned {
		if p.Node == "" {
			p.Node = a.Node
		}
		for _, c := range a.Containers {
			pc := PodContainer{Name: c.Name, VGPUs: len(c.Devices)}
			for _, d := range c.Devices {
				pc.MemoryMiB += d.MemoryMiB
				pc.Cores += d.Cores
				pc.GPUs = append(pc.GPUs, d.UUID)
			}
			p.Containers = append(p.Containers, pc)
		}
		return p, true, nil
	}
	req, err := gpustate.PodRequest(pod, cfg)
	if err != nil {
		// A pod whose request cannot be read is shown if it names Tessera
		// resources at all, so that the problem is visible beside it.
		return p, asksForTessera(pod, cfg.Resources), err
	}
	if len(req.Containers) == 0 {
		return Pod{}, false, nil
	}
	for _, c := range req.Containers {
		pc := PodContainer{Name: c.Name, VGPUs: c.GPUs, Cores: c.CoresPerGPU * c.GPUs}
		switch {
		case c.MemoryPercent > 0 && !c.WholeMemory:
			pc.MemoryPercent = c.MemoryPercent // resolved per GPU when placed
		case !c.WholeMemory:
			pc.MemoryMiB = c.MemoryMiBPerGPU * int64(c.GPUs)
		}
		p.Containers = append(p.Containers, pc)
	}
	// The one definition of waiting, shared with the estimator's metric
	// (pending pods are few: the second read of the request is cheap).
	if gpustate.WaitsForGPUs(pod, cfg) {
		p.Waiting = true
		p.Reason = schedulingMessage(pod)
	}
	return p, true, nil
}

func asksForTessera(pod *corev1.Pod, names config.ResourceNames) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, rl := range []corev1.ResourceList{c.Resources.Limits, c.Resources.Requests} {
				for name := range rl {
					if gpustate.IsTesseraResource(name, names) {
						return true
					}
				}
			}
		}
	}
	return false
}

// schedulingMessage is why the scheduler has not placed the pod, if it said.
func schedulingMessage(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Message
		}
	}
	return ""
}
