package deviceplugin

import (
	"cmp"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// podIndex holds the node's pods and which of their containers have been
// served. Its mutex guards memory only and is never held across an API
// call or a filesystem operation.
type podIndex struct {
	node     string
	resource corev1.ResourceName
	keys     annotations.Keys

	mu   sync.Mutex
	pods map[types.UID]*podEntry
	// ordered is pods sorted oldest first; nil when it must be rebuilt.
	ordered []*podEntry
	// served are the containers this process has served, per pod. They
	// outlive pod updates, so an informer event that predates the
	// Allocated patch cannot make a container look unserved again.
	served map[types.UID]map[string]bool
	// changed is closed (and replaced) whenever pods change, waking
	// callers that wait for a pod the informer has not delivered yet.
	changed chan struct{}
	// arrival numbers pods in the order this plugin first saw them bound to
	// the node: the order of the API server's watch, which the kubelet
	// sees too. It breaks ties between pods created in the same second.
	arrival     map[types.UID]uint64
	nextArrival uint64
	// removed remembers recently deleted pods, so that a List that raced
	// with a deletion cannot bring a deleted pod back (addIfUnknown).
	removed map[types.UID]time.Time
}

// removedMemory is how long a deleted pod is remembered: far longer than a
// List takes.
const removedMemory = 5 * time.Minute

func newPodIndex(node string, resource corev1.ResourceName, keys annotations.Keys) *podIndex {
	return &podIndex{
		node:     node,
		resource: resource,
		keys:     keys,
		pods:     map[types.UID]*podEntry{},
		served:   map[types.UID]map[string]bool{},
		changed:  make(chan struct{}),
		removed:  map[types.UID]time.Time{},
		arrival:  map[types.UID]uint64{},
	}
}

// upsert records a pod's current state and returns its entry and the
// previous one (nil if new), so the caller can log a problem only when it
// first appears.
func (ix *podIndex) upsert(pod *corev1.Pod) (entry, previous *podEntry) {
	entry = newPodEntry(pod, ix.node, ix.resource, ix.keys)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	previous = ix.pods[pod.UID]
	ix.pods[pod.UID] = entry
	ix.noteArrivalLocked(pod.UID)
	ix.ordered = nil
	ix.notifyLocked()
	return entry, previous
}

// addIfUnknown adds a pod that the index has never seen (nor seen deleted)
// and reports whether it did.
func (ix *podIndex) addIfUnknown(pod *corev1.Pod) bool {
	entry := newPodEntry(pod, ix.node, ix.resource, ix.keys)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if _, known := ix.pods[pod.UID]; known {
		return false
	}
	if _, gone := ix.removed[pod.UID]; gone {
		return false
	}
	ix.pods[pod.UID] = entry
	ix.noteArrivalLocked(pod.UID)
	ix.ordered = nil
	ix.notifyLocked()
	return true
}

func (ix *podIndex) noteArrivalLocked(uid types.UID) {
	if _, ok := ix.arrival[uid]; !ok {
		ix.nextArrival++
		ix.arrival[uid] = ix.nextArrival
	}
}

// remove forgets a pod.
func (ix *podIndex) remove(uid types.UID) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	now := time.Now()
	for old, at := range ix.removed {
		if now.Sub(at) > removedMemory {
			delete(ix.removed, old)
		}
	}
	ix.removed[uid] = now
	delete(ix.arrival, uid)
	delete(ix.pods, uid)
	delete(ix.served, uid)
	ix.ordered = nil
	ix.notifyLocked()
}

func (ix *podIndex) notifyLocked() {
	close(ix.changed)
	ix.changed = make(chan struct{})
}

// changes returns a channel closed at the next change of the pods.
func (ix *podIndex) changes() <-chan struct{} {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.changed
}

// hasPod reports whether the pod is known (for the region sweep).
func (ix *podIndex) hasPod(uid types.UID) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	_, ok := ix.pods[uid]
	return ok
}

// orderedLocked returns the pods in the order the kubelet admits them: by
// creation time, then in the order they arrived on the node. The kubelet
// stable-sorts each batch of new pods by creation time, and the batches
// come in watch order; creation times have a resolution of one second, so
// replicas of one workload usually tie and arrival order decides.
func (ix *podIndex) orderedLocked() []*podEntry {
	if ix.ordered != nil {
		return ix.ordered
	}
	ix.ordered = make([]*podEntry, 0, len(ix.pods))
	for _, e := range ix.pods {
		ix.ordered = append(ix.ordered, e)
	}
	slices.SortFunc(ix.ordered, func(a, b *podEntry) int {
		if c := a.pod.CreationTimestamp.Time.Compare(b.pod.CreationTimestamp.Time); c != 0 {
			return c
		}
		return cmp.Compare(ix.arrival[a.pod.UID], ix.arrival[b.pod.UID])
	})
	return ix.ordered
}

// annotationLacks says whether the index knows the pod and its Allocated
// annotation, as last seen, does not list container.
func (ix *podIndex) annotationLacks(uid types.UID, container string) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	e, ok := ix.pods[uid]
	return ok && !slices.Contains(e.servedByAnnotation, container)
}

func (ix *podIndex) isServedLocked(e *podEntry, container string) bool {
	return ix.served[e.pod.UID][container] || slices.Contains(e.servedByAnnotation, container)
}

// candidate is an unserved container that may be matched.
type candidate struct {
	entry     *podEntry
	container *assignedContainer
}

// eachUnservedLocked calls fn for every matchable container, oldest pod
// first, until fn returns false.
func (ix *podIndex) eachUnservedLocked(fn func(candidate) bool) {
	for _, e := range ix.orderedLocked() {
		if e.terminal || e.problem != "" {
			continue
		}
		for i := range e.containers {
			c := &e.containers[i]
			if ix.isServedLocked(e, c.name) {
				continue
			}
			if !fn(candidate{entry: e, container: c}) {
				return
			}
		}
	}
}

// markServedLocked records a container as served.
func (ix *podIndex) markServedLocked(e *podEntry, container string) {
	ix.markServedUIDLocked(e.pod.UID, container)
}

// markServedUIDLocked records a container as served by its pod's UID,
// known to the index or not yet (a restarted agent restores allocations
// of pods its informer may deliver later).
func (ix *podIndex) markServedUIDLocked(uid types.UID, container string) {
	m := ix.served[uid]
	if m == nil {
		m = map[string]bool{}
		ix.served[uid] = m
	}
	m[container] = true
}

// markRestoredServed records as served a container that an allocation on
// disk names as its owner, whether or not the pod is in the index yet.
func (ix *podIndex) markRestoredServed(uid types.UID, container string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.markServedUIDLocked(uid, container)
}

// podServed returns the latest object of a pod and its served containers.
func (ix *podIndex) podServed(uid types.UID) (*corev1.Pod, []string, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	e, ok := ix.pods[uid]
	if !ok {
		return nil, nil, false
	}
	return e.pod, ix.servedLocked(e), true
}

// servedLocked lists the containers of a pod served so far, by this
// process or (as the informer last saw) by the annotation.
func (ix *podIndex) servedLocked(e *podEntry) []string {
	out := slices.Clone(e.servedByAnnotation)
	for name := range ix.served[e.pod.UID] {
		out = append(out, name)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// byName returns the live entries of the pods with that namespace and name
// (the PodResources API names pods by name only; a pod replaced under the
// same name may briefly be there twice).
func (ix *podIndex) byName(namespace, name string) []*podEntry {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var out []*podEntry
	for _, e := range ix.orderedLocked() {
		if e.pod.Namespace == namespace && e.pod.Name == name && !e.terminal && e.pod.DeletionTimestamp == nil {
			out = append(out, e)
		}
	}
	return out
}

// markServed records a container as served: the kubelet has said it holds
// an allocation, so GetPreferredAllocation no longer prefers its slots.
func (ix *podIndex) markServed(uid types.UID, container string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if e, ok := ix.pods[uid]; ok {
		ix.markServedLocked(e, container)
	}
}
