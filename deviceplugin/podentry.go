package deviceplugin

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// assignedContainer is one container's assignment, ready for matching.
type assignedContainer struct {
	name    string
	devices []annotations.AssignedDevice
	// slots and gpus are sorted, for comparison with a slotRequest.
	slots []string
	gpus  []string
	// init is set for an init container.
	init bool
}

// podEntry is what the index knows about one pod on the node.
type podEntry struct {
	// pod is the informer's object: shared, never modified.
	pod *corev1.Pod
	// containers are the assigned containers in the order the kubelet
	// admits them (init containers first, then the others, in spec order).
	containers []assignedContainer
	// servedByAnnotation are the containers listed in the Allocated
	// annotation.
	servedByAnnotation []string
	// problem says why the pod's annotations cannot be used; empty when
	// they can. A pod with a problem is never matched.
	problem string
	// wantsResource is set when some container requests the resource.
	wantsResource bool
	// terminal pods (Succeeded, Failed) are never admitted again.
	terminal bool
}

func (e *podEntry) key() string { return e.pod.Namespace + "/" + e.pod.Name }

// container returns the assigned container of that name, or nil.
func (e *podEntry) container(name string) *assignedContainer {
	for i := range e.containers {
		if e.containers[i].name == name {
			return &e.containers[i]
		}
	}
	return nil
}

// initContainers returns the assigned init containers.
func (e *podEntry) initContainers() []*assignedContainer {
	var out []*assignedContainer
	for i := range e.containers {
		if e.containers[i].init {
			out = append(out, &e.containers[i])
		}
	}
	return out
}

// newPodEntry reads a pod's assignment and Allocated annotations. It never
// fails: whatever is wrong becomes the entry's problem, to be reported when a
// kubelet call might concern the pod.
func newPodEntry(pod *corev1.Pod, node string, resource corev1.ResourceName, keys annotations.Keys) *podEntry {
	e := &podEntry{
		pod:      pod,
		terminal: pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed,
	}
	requested := requestedSlots(pod, resource)
	e.wantsResource = len(requested) > 0
	raw, ok := pod.Annotations[keys.Assignment]
	if !ok {
		if e.wantsResource {
			e.problem = fmt.Sprintf("it has no assignment annotation %s (was it scheduled without the Tessera scheduler extender?)", keys.Assignment)
		}
		return e
	}
	assignment, err := annotations.DecodeAssignment(raw)
	if err != nil {
		e.problem = fmt.Sprintf("its annotation %s cannot be used: %v", keys.Assignment, err)
		return e
	}
	if assignment.Node != node {
		e.problem = fmt.Sprintf("its annotation %s assigns GPUs of node %q, not of this node %q", keys.Assignment, assignment.Node, node)
		return e
	}
	if raw, ok := pod.Annotations[keys.Allocated]; ok {
		allocated, err := annotations.DecodeAllocated(raw)
		if err != nil {
			// Refuse rather than guess: serving a container twice would
			// hand its GPUs to another pod's container.
			e.problem = fmt.Sprintf("its annotation %s cannot be used: %v", keys.Allocated, err)
			return e
		}
		e.servedByAnnotation = allocated.Containers
	}
	containers, err := orderAssignment(pod, assignment, requested)
	if err != nil {
		e.problem = fmt.Sprintf("its annotation %s does not fit the pod: %v", keys.Assignment, err)
		return e
	}
	e.containers = containers
	return e
}

// orderAssignment checks the assignment against the pod's spec (every
// container it names exists and asks for as many slots as it was given,
// and every container that asks has an assignment) and puts the containers
// in admission order.
func orderAssignment(pod *corev1.Pod, a annotations.Assignment, requested map[string]int64) ([]assignedContainer, error) {
	byName := make(map[string]annotations.ContainerAssignment, len(a.Containers))
	for _, c := range a.Containers {
		if _, dup := byName[c.Name]; dup {
			return nil, fmt.Errorf("container %q is assigned twice", c.Name)
		}
		// The name becomes a directory name on the host: it must be a
		// container name, never a path.
		if errs := validation.IsDNS1123Label(c.Name); len(errs) > 0 {
			return nil, fmt.Errorf("container name %q is invalid: %s", c.Name, strings.Join(errs, "; "))
		}
		byName[c.Name] = c
	}
	specNames := make([]string, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	inits := map[string]bool{}
	for _, c := range pod.Spec.InitContainers {
		specNames = append(specNames, c.Name)
		inits[c.Name] = true
	}
	for _, c := range pod.Spec.Containers {
		specNames = append(specNames, c.Name)
	}
	for name := range byName {
		if !slices.Contains(specNames, name) {
			return nil, fmt.Errorf("the pod has no container %q", name)
		}
	}
	var out []assignedContainer
	for _, name := range specNames {
		c, assigned := byName[name]
		want := requested[name]
		switch {
		case !assigned && want > 0:
			return nil, fmt.Errorf("container %q asks for %d slots but has no assignment", name, want)
		case !assigned:
			continue
		case int64(len(c.Devices)) != want:
			return nil, fmt.Errorf("container %q asks for %d slots but is assigned %d", name, want, len(c.Devices))
		}
		ac := assignedContainer{name: name, devices: c.Devices, init: inits[name]}
		for _, d := range c.Devices {
			ac.slots = append(ac.slots, d.SlotID)
			ac.gpus = append(ac.gpus, d.UUID)
		}
		slices.Sort(ac.slots)
		slices.Sort(ac.gpus) // Distinct: DecodeAssignment checked.
		out = append(out, ac)
	}
	return out, nil
}

// requestedSlots is each container's request of the resource (extended
// resources have limits equal to requests; either may be given).
func requestedSlots(pod *corev1.Pod, resource corev1.ResourceName) map[string]int64 {
	out := map[string]int64{}
	add := func(cs []corev1.Container) {
		for _, c := range cs {
			q, ok := c.Resources.Limits[resource]
			if !ok {
				q, ok = c.Resources.Requests[resource]
			}
			if ok && q.Value() > 0 {
				out[c.Name] = q.Value()
			}
		}
	}
	add(pod.Spec.InitContainers)
	add(pod.Spec.Containers)
	return out
}
