package gpucache

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
)

// Cache turns node and pod events into per-node GPU state. A node's state
// is recomputed only when the node's inventory or one of its pods changes;
// Snapshot assembles the published view lazily, once per batch of changes.
type Cache struct {
	keys annotations.Keys
	now  func() time.Time

	mu sync.Mutex
	// nodes holds every node seen, and placeholders for node names that
	// pods point at before their node arrives.
	nodes map[string]*nodeEntry
	// podNode is the node each tracked pod's GPU usage is attached to.
	podNode map[string]string
	// version counts changes; the published snapshot records the version it
	// was built at.
	version   uint64
	published *Snapshot
	// slots numbers every node name the cache has held, for good: states is
	// the current state by slot, so that publishing a snapshot copies one
	// slice of pointers instead of rebuilding a map of every node (which at
	// 50,000 nodes and 100 pod changes a second held mu most of the time),
	// and a reader that remembers a node's slot finds its state without
	// hashing the name.
	slots  *slotNames
	states []*NodeGPUs
	// withState counts the non-nil states.
	withState int
	// slotsShared is set once slots has been published: the next new name
	// then copies it, since snapshots read it without the lock.
	slotsShared bool
}

// slotNames is one generation of the name-to-slot index. It is never
// changed once a snapshot holds it; version orders the generations of one
// lineage (a Cache or a NewSnapshot), and a slot means the same node across
// every generation of one lineage.
type slotNames struct {
	lineage *Lineage
	version uint64
	slotOf  map[string]int32
}

// Lineage identifies one numbering of node slots.
type Lineage struct{ _ byte }

type nodeEntry struct {
	node *corev1.Node // nil for a placeholder
	// inventory is the raw annotation the current state was computed from,
	// so that status-only node updates (heartbeats) cost nothing.
	inventory    string
	hasInventory bool
	pods         map[string]*corev1.Pod
	state        *NodeGPUs
	slot         int32
}

// New returns an empty cache that reads annotations under keys.
func New(keys annotations.Keys) *Cache {
	return &Cache{
		keys: keys, now: time.Now, nodes: map[string]*nodeEntry{}, podNode: map[string]string{},
		slots: &slotNames{lineage: &Lineage{}, slotOf: map[string]int32{}},
	}
}

// AddEventHandlers subscribes the cache to the factory's node and pod
// informers. Call it before the factory is started. The returned functions
// report when every event of the informers' initial lists has reached the
// cache (an informer's own HasSynced only says its store is filled).
func (c *Cache) AddEventHandlers(factory informers.SharedInformerFactory) ([]toolscache.InformerSynced, error) {
	nodes, err := factory.Core().V1().Nodes().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.handleNode(obj, false) },
		UpdateFunc: func(_, obj any) { c.handleNode(obj, false) },
		DeleteFunc: func(obj any) { c.handleNode(obj, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe GPU cache to nodes: %w", err)
	}
	pods, err := factory.Core().V1().Pods().Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.handlePod(obj, false) },
		UpdateFunc: func(_, obj any) { c.handlePod(obj, false) },
		DeleteFunc: func(obj any) { c.handlePod(obj, true) },
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe GPU cache to pods: %w", err)
	}
	return []toolscache.InformerSynced{nodes.HasSynced, pods.HasSynced}, nil
}

func (c *Cache) handleNode(obj any, deleted bool) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		klog.ErrorS(nil, "GPU cache got an object that is not a Node", "type", fmt.Sprintf("%T", obj))
		return
	}
	if deleted {
		c.DeleteNode(node.Name)
		return
	}
	c.UpsertNode(node)
}

func (c *Cache) handlePod(obj any, deleted bool) {
	if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		klog.ErrorS(nil, "GPU cache got an object that is not a Pod", "type", fmt.Sprintf("%T", obj))
		return
	}
	if deleted {
		c.DeletePod(pod)
		return
	}
	c.UpsertPod(pod)
}

// UpsertNode records a node's current object.
func (c *Cache) UpsertNode(node *corev1.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entry(node.Name)
	raw, has := node.Annotations[c.keys.Inventory]
	if e.node != nil && e.state != nil && has == e.hasInventory && raw == e.inventory {
		e.node = node // only status, labels or other annotations changed: the GPU state stands
		return
	}
	e.node, e.inventory, e.hasInventory = node, raw, has
	c.recompute(e)
}

// DeleteNode forgets a node; pods still pointing at it keep a placeholder
// so that they are counted if the node comes back.
func (c *Cache) DeleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.nodes[name]
	if !ok {
		return
	}
	e.node, e.inventory, e.hasInventory = nil, "", false
	c.setState(e, nil)
	if len(e.pods) == 0 {
		delete(c.nodes, name)
	}
	c.version++
}

// UpsertPod records a pod's current object. Only pods with an assignment
// annotation (or that had one) affect GPU state.
func (c *Cache) UpsertPod(pod *corev1.Pod) {
	key := pod.Namespace + "/" + pod.Name
	target := c.gpuNodeOf(pod)
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, tracked := c.podNode[key]
	if tracked && prev != target {
		c.detach(key, prev)
	}
	if target == "" {
		return
	}
	c.podNode[key] = target
	e := c.entry(target)
	e.pods[key] = pod
	c.recompute(e)
}

// DeletePod forgets a pod.
func (c *Cache) DeletePod(pod *corev1.Pod) {
	key := pod.Namespace + "/" + pod.Name
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, tracked := c.podNode[key]; tracked {
		c.detach(key, prev)
	}
}

// gpuNodeOf is the node whose GPUs the pod uses: the node its assignment
// names. A pod whose assignment does not decode is attached to the node it
// is bound to, so that the problem is reported with that node's state;
// terminal pods and pods without assignment use nothing.
func (c *Cache) gpuNodeOf(pod *corev1.Pod) string {
	if gpustate.IsTerminal(pod) {
		return ""
	}
	a, found, err := gpustate.PodAssignment(pod, c.keys)
	switch {
	case !found:
		return ""
	case err != nil && pod.Spec.NodeName == "":
		klog.ErrorS(err, "Pod's GPU assignment is not counted", "pod", klog.KObj(pod))
		return ""
	case err != nil:
		return pod.Spec.NodeName
	}
	return a.Node
}

// detach removes a pod from a node; the caller holds mu.
func (c *Cache) detach(key, nodeName string) {
	delete(c.podNode, key)
	e, ok := c.nodes[nodeName]
	if !ok {
		return
	}
	delete(e.pods, key)
	if e.node == nil && len(e.pods) == 0 {
		delete(c.nodes, nodeName)
		c.version++
		return
	}
	c.recompute(e)
}

// entry returns the node's entry, creating a placeholder; the caller holds mu.
func (c *Cache) entry(name string) *nodeEntry {
	e, ok := c.nodes[name]
	if !ok {
		e = &nodeEntry{pods: map[string]*corev1.Pod{}, slot: c.slotFor(name)}
		c.nodes[name] = e
	}
	return e
}

// slotFor returns the name's slot, numbering a new name; the caller holds
// mu. A name keeps its slot after its node is deleted (8 bytes and a map
// entry per name ever seen), so that a slot never changes meaning.
func (c *Cache) slotFor(name string) int32 {
	if slot, ok := c.slots.slotOf[name]; ok {
		return slot
	}
	if c.slotsShared {
		c.slots = &slotNames{lineage: c.slots.lineage, version: c.slots.version, slotOf: maps.Clone(c.slots.slotOf)}
		c.slotsShared = false
	}
	slot := int32(len(c.states))
	c.slots.slotOf[name] = slot
	c.slots.version++
	c.states = append(c.states, nil)
	return slot
}

// setState records a node's new state; the caller holds mu.
func (c *Cache) setState(e *nodeEntry, state *NodeGPUs) {
	if (e.state != nil) != (state != nil) {
		if state != nil {
			c.withState++
		} else {
			c.withState--
		}
	}
	e.state = state
	c.states[e.slot] = state
}

// recompute derives a node's GPU state from its objects and logs what is
// wrong with them: this runs once per change of the node or its pods, so
// each problem is logged once per change. The caller holds mu.
func (c *Cache) recompute(e *nodeEntry) {
	c.version++
	if e.node == nil {
		c.setState(e, nil)
		return
	}
	pods := make([]*corev1.Pod, 0, len(e.pods))
	for _, p := range e.pods {
		pods = append(pods, p)
	}
	devices, podErrs, err := gpustate.NodeDevicesWithPodErrors(e.node, pods, c.keys)
	state := &NodeGPUs{Name: e.node.Name, Devices: devices, InventoryErr: err, BadPods: len(podErrs)}
	if err != nil {
		klog.ErrorS(err, "Node's GPU inventory does not decode; it counts as having no GPUs", "node", e.node.Name)
		state.Devices = nil
	}
	for _, pe := range podErrs {
		klog.ErrorS(pe.Err, "Pod's GPU assignment is not counted", "pod", pe.Pod, "node", e.node.Name)
	}
	c.setState(e, state)
}

// Snapshot returns a consistent view of every node's GPU state. It is
// rebuilt only when something changed since the last call; callers must not
// modify it.
func (c *Cache) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.published != nil && c.published.version == c.version {
		return c.published
	}
	c.slotsShared = true
	c.published = &Snapshot{version: c.version, slots: c.slots, states: slices.Clone(c.states), count: c.withState, TakenAt: c.now()}
	return c.published
}
