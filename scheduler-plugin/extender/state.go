package extender

import (
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// nodeState is what the extender knows about one node: the Node, the pods
// whose assignment names it, and the assignments it has handed out but not
// yet seen come back through the pod informer (in flight).
//
// Its mutex serialises the decisions about this node (a bind's choice and
// reservation) and guards memory only: it is never held across an API call.
type nodeState struct {
	name string

	mu   sync.Mutex
	node *corev1.Node
	// pods are the informer's pods whose assignment names this node (or,
	// when unreadable, that are bound to it, so the problem is reported).
	pods map[types.UID]*corev1.Pod
	// inflight are assignments this process wrote (or is writing) for pods
	// whose informer copy does not show them yet. A pod in inflight is
	// counted by its reservation, never by its informer copy as well.
	inflight map[types.UID]reservation
	// view is the derived GPU state; nil when pods, node or inflight changed.
	view *nodeView
}

// reservation is one in-flight assignment, as the pod that will carry it:
// the shared gpustate code then counts it exactly as it counts any pod.
type reservation struct {
	pod *corev1.Pod
	// value is the encoded assignment annotation, to recognise it when the
	// informer delivers the patched pod.
	value string
}

// nodeView is a node's GPUs as the fit algorithm sees them, plus the slot
// numbers already taken on each GPU. Apart from its memo of fit verdicts it
// is immutable once built, so a caller may keep using it after the node's
// mutex is released.
type nodeView struct {
	devices []vgpu.DeviceState
	// usedSlots maps GPU UUID to the slot numbers assignments hold on it.
	usedSlots map[string]map[int]bool
	// err is set when the node's inventory cannot be read.
	err error
	// hasInventory is false for a node without Tessera GPUs.
	hasInventory bool
	// fits remembers the fit verdicts given on this view (memo.go). Only
	// the node's cached view has one; the node's mutex guards it.
	fits *fitMemo
}

func newNodeState(name string) *nodeState {
	return &nodeState{name: name, pods: map[types.UID]*corev1.Pod{}, inflight: map[types.UID]reservation{}}
}

// claimLocked is the assignment annotation through which a pod is counted
// on this node: its reservation if it has one, else its informer copy's;
// "" when it is not counted here. The view depends on pods only through
// their claims, so it stays valid while every claim stays the same.
func (s *nodeState) claimLocked(keys annotations.Keys, uid types.UID) string {
	if res, ok := s.inflight[uid]; ok {
		return res.value
	}
	if pod, ok := s.pods[uid]; ok {
		return pod.Annotations[keys.Assignment]
	}
	return ""
}

func (s *nodeState) invalidateIfChangedLocked(keys annotations.Keys, uid types.UID, before string) {
	if s.claimLocked(keys, uid) != before {
		s.view = nil
	}
}

// viewLocked returns the node's view, rebuilding it when stale. The
// caller holds s.mu.
func (s *nodeState) viewLocked(keys annotations.Keys) *nodeView {
	if s.view == nil {
		s.view = s.buildView(keys, "")
	}
	return s.view
}

// viewExcludingLocked returns the node's view without the claim of one pod: a
// pod being scheduled again (its earlier bind failed after the annotation
// was written) must not be kept off a node by its own stale claim. The
// result is built fresh and not cached. The caller holds s.mu.
func (s *nodeState) viewExcludingLocked(keys annotations.Keys, uid types.UID) *nodeView {
	_, cached := s.pods[uid]
	_, reserved := s.inflight[uid]
	if !cached && !reserved {
		return s.viewLocked(keys)
	}
	return s.buildView(keys, uid)
}

// buildView derives the node's GPU state with gpustate (the same code the
// Karmada estimator runs) from the informer's pods, with every reservation
// standing in for its pod's informer copy.
func (s *nodeState) buildView(keys annotations.Keys, exclude types.UID) *nodeView {
	if s.node == nil {
		return &nodeView{err: fmt.Errorf("node %s is not in the extender's cache (yet)", s.name)}
	}
	pods := make([]*corev1.Pod, 0, len(s.pods)+len(s.inflight))
	for uid, pod := range s.pods {
		if _, reserved := s.inflight[uid]; !reserved && uid != exclude {
			pods = append(pods, pod)
		}
	}
	for uid, r := range s.inflight {
		if uid != exclude {
			pods = append(pods, r.pod)
		}
	}
	_, hasInventory := s.node.Annotations[keys.Inventory]
	devices, podErrs, err := gpustate.NodeDevicesWithPodErrors(s.node, pods, keys)
	if err != nil {
		return &nodeView{err: err, hasInventory: hasInventory}
	}
	if exclude == "" {
		// Logged when the view is rebuilt, i.e. once per change, not once
		// per filter call.
		for _, pe := range podErrs {
			klog.ErrorS(pe.Err, "Pod's GPU assignment is not counted", "pod", pe.Pod, "node", s.name)
		}
	}
	return &nodeView{devices: devices, usedSlots: usedSlots(s.name, pods, keys), hasInventory: hasInventory}
}

// usedSlots collects the slot numbers that the pods' assignments on this
// node hold, per GPU. Unreadable assignments hold none (gpustate does not
// count them either); a slot ID that does not parse holds none.
func usedSlots(node string, pods []*corev1.Pod, keys annotations.Keys) map[string]map[int]bool {
	used := map[string]map[int]bool{}
	for _, pod := range pods {
		if gpustate.IsTerminal(pod) {
			continue
		}
		a, found, err := gpustate.PodAssignment(pod, keys)
		if err != nil || !found || a.Node != node {
			continue
		}
		for _, c := range a.Containers {
			for _, d := range c.Devices {
				uuid, n, err := vgpu.ParseSlotID(d.SlotID)
				if err != nil {
					continue
				}
				if used[uuid] == nil {
					used[uuid] = map[int]bool{}
				}
				used[uuid][n] = true
			}
		}
	}
	return used
}

// registry maps node names to their state. Its mutex guards the maps only
// and is never held while a node's mutex is taken or an API call is made.
type registry struct {
	keys annotations.Keys

	mu    sync.RWMutex
	nodes map[string]*nodeState
	// podNode is the node whose pods (or inflight) holds each tracked pod.
	podNode map[types.UID]string
	// reservedOn is the node of each in-flight reservation, so that a
	// deleted pod's reservation is dropped even when its informer copy
	// never showed the assignment.
	reservedOn map[types.UID]string
	// binding holds the pods with a bind in progress: a second bind of the
	// same pod (kube-scheduler retrying after a timeout) is refused rather
	// than racing the first for the pod's annotation.
	binding map[types.UID]bool
}

func newRegistry(keys annotations.Keys) *registry {
	return &registry{
		keys:       keys,
		nodes:      map[string]*nodeState{},
		podNode:    map[types.UID]string{},
		reservedOn: map[types.UID]string{},
		binding:    map[types.UID]bool{},
	}
}

// get returns the node's state, creating it when create is set.
func (r *registry) get(name string, create bool) *nodeState {
	r.mu.RLock()
	s := r.nodes[name]
	r.mu.RUnlock()
	if s != nil || !create {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s = r.nodes[name]; s == nil {
		s = newNodeState(name)
		r.nodes[name] = s
	}
	return s
}

// getAll returns the states of the named nodes (nil for a node without
// one), under one read lock rather than one per node: filter looks up every
// candidate node on every call.
func (r *registry) getAll(names []string) []*nodeState {
	out := make([]*nodeState, len(names))
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i, n := range names {
		out[i] = r.nodes[n]
	}
	return out
}

// startBinding marks a pod as being bound; false if it already is.
func (r *registry) startBinding(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.binding[uid] {
		return false
	}
	r.binding[uid] = true
	return true
}

func (r *registry) endBinding(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.binding, uid)
}

// inflightCount is the number of reservations not yet confirmed.
func (r *registry) inflightCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.reservedOn)
}

// setNode records a Node add or update.
func (r *registry) setNode(node *corev1.Node) {
	s := r.get(node.Name, true)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node = node
	s.view = nil
}

// deleteNode forgets a Node. Its pods stay indexed: they are removed when
// their own delete events arrive, and a re-created Node sees them again.
func (r *registry) deleteNode(name string) {
	s := r.get(name, false)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.node = nil
	s.view = nil
}

// podNodeKey is the node a pod's GPU claim is on, or "" when it holds none.
func (r *registry) podNodeKey(pod *corev1.Pod) string {
	if gpustate.IsTerminal(pod) {
		return ""
	}
	a, found, err := gpustate.PodAssignment(pod, r.keys)
	switch {
	case !found:
		return ""
	case err != nil:
		// Indexed under its node so that gpustate reports it by name.
		return pod.Spec.NodeName
	}
	return a.Node
}

// setPod records a pod add or update: it moves the pod to the node its
// assignment names and confirms a reservation that the pod now carries.
func (r *registry) setPod(pod *corev1.Pod) {
	key := r.podNodeKey(pod)
	r.mu.Lock()
	old := r.podNode[pod.UID]
	if key == "" {
		delete(r.podNode, pod.UID)
	} else {
		r.podNode[pod.UID] = key
	}
	reservedOn := r.reservedOn[pod.UID]
	r.mu.Unlock()

	if old != "" && old != key {
		r.untrack(old, pod.UID)
	}
	if key != "" {
		s := r.get(key, true)
		s.mu.Lock()
		before := s.claimLocked(r.keys, pod.UID)
		s.pods[pod.UID] = pod
		s.invalidateIfChangedLocked(r.keys, pod.UID, before)
		s.mu.Unlock()
	}
	if reservedOn != "" {
		r.confirm(reservedOn, pod)
	}
}

// deletePod forgets a pod and any reservation for it.
func (r *registry) deletePod(uid types.UID) {
	r.mu.Lock()
	old := r.podNode[uid]
	delete(r.podNode, uid)
	reservedOn := r.reservedOn[uid]
	r.mu.Unlock()
	if old != "" {
		r.untrack(old, uid)
	}
	if reservedOn != "" {
		r.release(reservedOn, uid, "")
	}
}

func (r *registry) untrack(node string, uid types.UID) {
	s := r.get(node, false)
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := s.claimLocked(r.keys, uid)
	delete(s.pods, uid)
	s.invalidateIfChangedLocked(r.keys, uid, before)
}

// confirm drops a reservation once the informer's copy of the pod carries
// exactly the reserved assignment (from then on that copy is counted), or
// once the pod has finished.
func (r *registry) confirm(node string, pod *corev1.Pod) {
	s := r.get(node, false)
	if s == nil {
		return
	}
	s.mu.Lock()
	res, ok := s.inflight[pod.UID]
	done := ok && (pod.Annotations[r.keys.Assignment] == res.value || gpustate.IsTerminal(pod))
	if done {
		before := s.claimLocked(r.keys, pod.UID)
		delete(s.inflight, pod.UID)
		// Usually the informer's copy now carries exactly the reserved
		// assignment, the count does not change and the view stays valid.
		s.invalidateIfChangedLocked(r.keys, pod.UID, before)
	}
	s.mu.Unlock()
	if done {
		r.forgetReservation(pod.UID, node)
	}
}

// reserveLocked records an in-flight assignment on s. The caller holds
// s.mu; the registry's own mutex is taken after it (the one allowed order).
func (r *registry) reserveLocked(s *nodeState, res reservation) {
	s.inflight[res.pod.UID] = res
	s.view = nil
	r.mu.Lock()
	r.reservedOn[res.pod.UID] = s.name
	r.mu.Unlock()
}

// release drops a reservation. When value is set, only a reservation with
// that exact assignment is dropped, so that a failed bind never removes a
// newer reservation of the same pod.
func (r *registry) release(node string, uid types.UID, value string) {
	s := r.get(node, false)
	if s == nil {
		return
	}
	s.mu.Lock()
	res, ok := s.inflight[uid]
	drop := ok && (value == "" || res.value == value)
	if drop {
		before := s.claimLocked(r.keys, uid)
		delete(s.inflight, uid)
		s.invalidateIfChangedLocked(r.keys, uid, before)
	}
	s.mu.Unlock()
	if drop {
		r.forgetReservation(uid, node)
	}
}

func (r *registry) forgetReservation(uid types.UID, node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reservedOn[uid] == node {
		delete(r.reservedOn, uid)
	}
}
