package extender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// rollbackTimeout bounds the clean-up after a failed bind. The clean-up
// runs even when kube-scheduler has stopped waiting for the answer.
const rollbackTimeout = 10 * time.Second

// bindError is a failed bind with its result label.
type bindError struct {
	result string
	err    error
}

func (b *bindError) Error() string { return b.err.Error() }
func (b *bindError) Unwrap() error { return b.err }

func failBind(result string, format string, args ...any) error {
	return &bindError{result: result, err: fmt.Errorf(format, args...)}
}

// Bind chooses the GPUs and slot IDs of every container of the pod on the
// node kube-scheduler picked, writes them to the pod's assignment
// annotation and then creates the Binding. The assignment is reserved in
// memory before it is written, so that no concurrent bind on the node can
// take the same capacity; it is released again if the bind fails.
func (e *Extender) Bind(ctx context.Context, args *extenderv1.ExtenderBindingArgs) *extenderv1.ExtenderBindingResult {
	start := time.Now()
	// Whatever happens, the filters waiting for this bind go on.
	defer e.pending.settle(args.PodUID)
	err := e.bind(ctx, args)
	result := BindSucceeded
	var be *bindError
	switch {
	case errors.As(err, &be):
		result = be.result
	case err != nil:
		result = BindAPIError
	}
	e.metrics.observeBind(start, result)
	e.metrics.setInflight(e.state.inflightCount())
	if err != nil {
		klog.FromContext(ctx).Info("Bind failed", "pod", klog.KRef(args.PodNamespace, args.PodName), "node", args.Node, "result", result, "err", err)
		return &extenderv1.ExtenderBindingResult{Error: err.Error()}
	}
	return &extenderv1.ExtenderBindingResult{}
}

func (e *Extender) bind(ctx context.Context, args *extenderv1.ExtenderBindingArgs) error {
	if args.PodName == "" || args.PodNamespace == "" || args.Node == "" || args.PodUID == "" {
		return failBind(BindInvalid, "bind: the call must name the pod (namespace, name, UID) and the node; got %s/%s uid %q node %q",
			args.PodNamespace, args.PodName, args.PodUID, args.Node)
	}
	if !e.isLeader() {
		return failBind(BindNotLeader, "bind pod %s/%s: this extender replica is not the leader; kube-scheduler will retry", args.PodNamespace, args.PodName)
	}
	if !e.state.startBinding(args.PodUID) {
		return failBind(BindInvalid, "bind pod %s/%s: another bind of this pod is in progress", args.PodNamespace, args.PodName)
	}
	defer e.state.endBinding(args.PodUID)

	pod, err := e.getPod(ctx, args.PodNamespace, args.PodName, args.PodUID)
	if err != nil {
		return err
	}
	if pod.Spec.NodeName != "" {
		return e.alreadyBound(pod, args.Node)
	}
	req, err := gpustate.PodRequest(pod, e.cfg)
	if err != nil {
		return failBind(BindInvalid, "bind pod %s: invalid GPU request: %w", podRef(pod), err)
	}
	if !asksForGPUs(req) {
		// Interested only through a zero request: nothing to assign.
		return e.createBinding(ctx, pod, args.Node)
	}
	assignment, value, err := e.reserve(pod, req, args.Node)
	if be := (*bindError)(nil); errors.As(err, &be) && be.result == BindUnfit && e.pending.passed(pod.UID, args.Node) {
		// The pod's filter passed the node, and a bind since took the room.
		e.metrics.observeBindConflict()
	}
	// Decided: filters waiting for this bind now see its reservation.
	e.pending.settle(pod.UID)
	if err != nil {
		return err
	}
	if err := e.patchAssignment(ctx, pod, value); err != nil {
		e.rollback(ctx, pod, args.Node, value)
		return fmt.Errorf("bind pod %s: write GPU assignment: %w", podRef(pod), err)
	}
	if err := e.createBinding(ctx, pod, args.Node); err != nil {
		if e.boundWith(ctx, pod, args.Node, value) {
			// The Binding was created although the call failed (a timeout
			// after the write): the bind succeeded.
			return nil
		}
		e.rollback(ctx, pod, args.Node, value)
		return err
	}
	e.recorder.Eventf(pod, corev1.EventTypeNormal, ReasonAssigned, "Assigned GPUs on node %s: %s", args.Node, describe(assignment))
	return nil
}

// getPod reads the pod from the informer cache, or from the API server when
// the cache does not have it (yet) or holds an older pod of the same name.
func (e *Extender) getPod(ctx context.Context, namespace, name string, uid types.UID) (*corev1.Pod, error) {
	pod, err := e.podLister.Pods(namespace).Get(name)
	if err == nil && pod.UID == uid {
		return pod, nil
	}
	pod, err = e.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("bind pod %s/%s: read pod: %w", namespace, name, err)
	}
	if pod.UID != uid {
		return nil, failBind(BindInvalid, "bind pod %s/%s: the pod has UID %s, not %s (it was re-created)", namespace, name, pod.UID, uid)
	}
	return pod, nil
}

// alreadyBound answers a bind of a pod that is bound already: success when
// it is bound to the same node with an assignment for it (a retried call
// whose first attempt succeeded), an error otherwise.
func (e *Extender) alreadyBound(pod *corev1.Pod, node string) error {
	a, found, err := gpustate.PodAssignment(pod, e.keys)
	if pod.Spec.NodeName == node && err == nil && found && a.Node == node {
		return nil
	}
	return failBind(BindInvalid, "bind pod %s to node %s: it is already bound to node %s", podRef(pod), node, pod.Spec.NodeName)
}

// reserve chooses the pod's GPUs and slots on the node and records them as
// in flight, all under the node's lock, so that two binds on one node
// decide one after the other, each seeing the other's reservation.
func (e *Extender) reserve(pod *corev1.Pod, req vgpu.PodRequest, node string) (annotations.Assignment, string, error) {
	s := e.state.get(node, false)
	if s == nil {
		return annotations.Assignment{}, "", failBind(BindUnfit, "bind pod %s: node %s is not in the extender's cache", podRef(pod), node)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	view := s.viewExcludingLocked(e.keys, pod.UID)
	if view.err != nil {
		return annotations.Assignment{}, "", failBind(BindUnfit, "bind pod %s: %w", podRef(pod), view.err)
	}
	placement, err := vgpu.Place(view.devices, req)
	if err != nil {
		return annotations.Assignment{}, "", failBind(BindUnfit, "bind pod %s to node %s: %w", podRef(pod), node, err)
	}
	// Apply re-checks every GPU's capacity with the placement added: a
	// second line of defence that turns any fit bug into a failed bind
	// instead of an overcommitted GPU.
	applied, err := vgpu.Apply(view.devices, placement)
	if err != nil {
		return annotations.Assignment{}, "", failBind(BindUnfit, "bind pod %s to node %s: %w", podRef(pod), node, err)
	}
	assignment, err := assignSlots(node, placement, view)
	if err != nil {
		return annotations.Assignment{}, "", failBind(BindUnfit, "bind pod %s to node %s: %w", podRef(pod), node, err)
	}
	value, err := annotations.EncodeAssignment(assignment)
	if err != nil {
		return annotations.Assignment{}, "", failBind(BindInvalid, "bind pod %s: %w", podRef(pod), err)
	}
	// Never write what the device plugin could not read back.
	if _, err := annotations.DecodeAssignment(value); err != nil {
		return annotations.Assignment{}, "", failBind(BindInvalid, "bind pod %s to node %s: the chosen assignment is not valid: %w", podRef(pod), node, err)
	}
	stand := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID,
		Annotations: map[string]string{e.keys.Assignment: value},
	}}
	cached := view == s.view
	e.state.reserveLocked(s, reservation{pod: stand, value: value})
	if cached {
		// Update the cached view in place of rebuilding it from every pod
		// on the node: the next filter or bind on this node needs it.
		s.view = &nodeView{devices: applied, usedSlots: withSlots(view.usedSlots, assignment), hasInventory: true}
	}
	return assignment, value, nil
}

// assignSlots gives every device grant the lowest slot number of its GPU
// that no assignment on the node (nor an earlier container of this pod)
// holds.
func assignSlots(node string, p vgpu.Placement, view *nodeView) (annotations.Assignment, error) {
	slots := make(map[string]int, len(view.devices))
	for _, d := range view.devices {
		slots[d.UUID] = d.Slots
	}
	taken := map[string]map[int]bool{}
	a := annotations.Assignment{Version: annotations.Version, Node: node}
	for _, c := range p.Containers {
		ca := annotations.ContainerAssignment{Name: c.Name}
		for _, g := range c.Devices {
			n := -1
			for i := range slots[g.UUID] {
				if !view.usedSlots[g.UUID][i] && !taken[g.UUID][i] {
					n = i
					break
				}
			}
			if n < 0 {
				return annotations.Assignment{}, fmt.Errorf("GPU %s has no free slot number (assignments hold %d of %d)",
					g.UUID, len(view.usedSlots[g.UUID])+len(taken[g.UUID]), slots[g.UUID])
			}
			if taken[g.UUID] == nil {
				taken[g.UUID] = map[int]bool{}
			}
			taken[g.UUID][n] = true
			ca.Devices = append(ca.Devices, annotations.AssignedDevice{
				UUID: g.UUID, SlotID: vgpu.SlotID(g.UUID, n), MemoryMiB: g.MemoryMiB, Cores: g.Cores,
			})
		}
		a.Containers = append(a.Containers, ca)
	}
	return a, nil
}

// withSlots returns a copy of used with the assignment's slots added.
func withSlots(used map[string]map[int]bool, a annotations.Assignment) map[string]map[int]bool {
	out := make(map[string]map[int]bool, len(used))
	for uuid, slots := range used {
		out[uuid] = slots // never modified: copied below before a change
	}
	for _, c := range a.Containers {
		for _, d := range c.Devices {
			_, n, err := vgpu.ParseSlotID(d.SlotID)
			if err != nil {
				continue
			}
			next := make(map[int]bool, len(out[d.UUID])+1)
			for k := range out[d.UUID] {
				next[k] = true
			}
			next[n] = true
			out[d.UUID] = next
		}
	}
	return out
}

// patchAssignment writes the assignment annotation. The UID in the patch is
// a precondition: a pod re-created under the same name is never patched.
func (e *Extender) patchAssignment(ctx context.Context, pod *corev1.Pod, value string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":         pod.UID,
		"annotations": map[string]string{e.keys.Assignment: value},
	}})
	if err != nil {
		return fmt.Errorf("build annotation patch: %w", err)
	}
	_, err = e.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}

func (e *Extender) createBinding(ctx context.Context, pod *corev1.Pod, node string) error {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: node},
	}
	if err := e.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("bind pod %s to node %s: create binding: %w", podRef(pod), node, err)
	}
	return nil
}

// boundWith reports whether the pod is, on the API server, bound to node
// with exactly this assignment.
func (e *Extender) boundWith(ctx context.Context, pod *corev1.Pod, node, value string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	cur, err := e.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	return err == nil && cur.UID == pod.UID && cur.Spec.NodeName == node && cur.Annotations[e.keys.Assignment] == value
}

// rollback undoes a failed bind: it removes the assignment annotation from
// the pod if the pod is still unbound and carries exactly this assignment,
// and releases the reservation. When the pod's state cannot be read, the
// reservation is kept: the write may have happened, and a reservation that
// is kept too long only holds capacity (it is dropped when the informer
// shows the pod), while one released too early could give it away twice.
func (e *Extender) rollback(ctx context.Context, pod *corev1.Pod, node, value string) {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	pods := e.client.CoreV1().Pods(pod.Namespace)
	cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		e.state.release(node, pod.UID, value)
		return
	case err != nil:
		logger.Error(err, "Cannot read pod after a failed bind; keeping its GPU reservation", "pod", klog.KObj(pod), "node", node)
		return
	case cur.UID != pod.UID:
		e.state.release(node, pod.UID, value)
		return
	case cur.Spec.NodeName == node && cur.Annotations[e.keys.Assignment] == value:
		// Bound after all: the reservation is confirmed by the informer.
		return
	}
	if cur.Annotations[e.keys.Assignment] == value {
		// resourceVersion makes the removal conditional on nothing having
		// changed since the read.
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
			"uid":             pod.UID,
			"resourceVersion": cur.ResourceVersion,
			"annotations":     map[string]any{e.keys.Assignment: nil},
		}})
		if err == nil {
			_, err = pods.Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		}
		if err != nil {
			// The stale claim holds capacity until the pod is bound again
			// (which rewrites it) or deleted; the pod itself ignores it.
			logger.Error(err, "Cannot remove the GPU assignment of a pod whose bind failed", "pod", klog.KObj(pod), "node", node)
		}
	}
	e.state.release(node, pod.UID, value)
	e.recorder.Eventf(pod, corev1.EventTypeWarning, ReasonBindFailed, "GPU assignment on node %s was rolled back after a failed bind", node)
}

// describe renders an assignment for an event: "main: GPU-a::0 (40960 MiB, 50%)".
func describe(a annotations.Assignment) string {
	parts := make([]string, 0, len(a.Containers))
	for _, c := range a.Containers {
		devs := make([]string, len(c.Devices))
		for i, d := range c.Devices {
			devs[i] = fmt.Sprintf("%s (%d MiB, %d%% cores)", d.SlotID, d.MemoryMiB, d.Cores)
		}
		parts = append(parts, c.Name+": "+strings.Join(devs, ", "))
	}
	return strings.Join(parts, "; ")
}
