package testcluster

import (
	"fmt"
	"math/rand/v2"

	corev1 "k8s.io/api/core/v1"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

// Churn is a member cluster whose pods and nodes change, fed to Karmada's
// scheduler cache and Tessera's GPU cache through the same calls the
// estimator server's informer handlers make. It is not safe for concurrent
// Change calls; the caches themselves may be read meanwhile.
type Churn struct {
	Sched schedcache.Cache
	GPUs  *gpucache.Cache
	Nodes []*corev1.Node
	// Pods are the bound pods, Present whether each is in the caches now.
	Pods    []*corev1.Pod
	Present []bool
	Rng     *rand.Rand
	// unbound are pods with a GPU assignment but no node yet: the GPU cache
	// counts them, Karmada's snapshot does not, so toggling one changes a
	// node's GPU state and not its NodeInfo generation.
	unbound        []*corev1.Pod
	unboundPresent []bool
	// late are empty nodes Karmada's cache holds from the start and the GPU
	// cache learns of later, one per change that picks it: the GPU cache has
	// no slot for their names until then.
	late []*corev1.Node
}

// NewChurn feeds nodes (which should carry "zone" labels) and pods to both
// caches, every tenth pod unbound, plus len(nodes)/50 late nodes. The
// scheduler cache runs until stop is closed.
func NewChurn(seed uint64, nodes []*corev1.Node, pods []*corev1.Pod, stop <-chan struct{}) (*Churn, error) {
	c := &Churn{
		Sched: schedcache.New(0, stop), GPUs: gpucache.New(annotations.DefaultKeys()),
		Nodes: nodes, Present: make([]bool, len(pods)), Rng: rand.New(rand.NewPCG(seed, 7)),
	}
	for _, node := range nodes {
		c.Sched.AddNode(node)
		c.GPUs.UpsertNode(node)
	}
	for i := range max(len(nodes)/50, 1) {
		spec := NodeSpec{Name: fmt.Sprintf("late-%d", i), MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110}
		for g := range 8 {
			spec.GPUs = append(spec.GPUs, GPU(spec.Name, g))
		}
		node := Node(spec)
		c.Sched.AddNode(node)
		c.late = append(c.late, node)
	}
	for i, p := range pods {
		if i%10 == 9 { // every tenth assigned pod is not bound yet
			u := p.DeepCopy()
			u.Spec.NodeName = ""
			c.unbound = append(c.unbound, u)
			c.unboundPresent = append(c.unboundPresent, true)
			c.GPUs.UpsertPod(u)
			continue
		}
		c.Pods = append(c.Pods, p)
		c.Present[len(c.Pods)-1] = true
		if err := c.Sched.AddPod(p); err != nil {
			return nil, fmt.Errorf("add pod %s to the scheduler cache: %w", p.Name, err)
		}
		c.GPUs.UpsertPod(p)
	}
	c.Present = c.Present[:len(c.Pods)]
	return c, nil
}

// Change applies one random change: mostly a bound pod leaving or coming
// back, sometimes an unbound one (GPU state only), sometimes a node's taint
// or zone label flipping (matching only), sometimes a late node appearing.
func (c *Churn) Change() {
	switch r := c.Rng.IntN(20); {
	case r == 1 && len(c.late) > 0:
		c.GPUs.UpsertNode(c.late[0])
		c.late = c.late[1:]
	case r == 0:
		c.flipNode(c.Rng.IntN(len(c.Nodes)))
	case r <= 4 && len(c.unbound) > 0:
		i := c.Rng.IntN(len(c.unbound))
		if c.unboundPresent[i] {
			c.GPUs.DeletePod(c.unbound[i])
		} else {
			c.GPUs.UpsertPod(c.unbound[i])
		}
		c.unboundPresent[i] = !c.unboundPresent[i]
	default:
		i := c.Rng.IntN(len(c.Pods))
		p := c.Pods[i]
		if c.Present[i] {
			_ = c.Sched.RemovePod(p) // errors only for a pod it does not hold
			c.GPUs.DeletePod(p)
		} else {
			_ = c.Sched.AddPod(p)
			c.GPUs.UpsertPod(p)
		}
		c.Present[i] = !c.Present[i]
	}
}

// flipNode flips node i's taint or its zone label.
func (c *Churn) flipNode(i int) {
	old := c.Nodes[i]
	node := old.DeepCopy()
	if c.Rng.IntN(2) == 0 {
		if len(node.Spec.Taints) == 0 {
			node.Spec.Taints = []corev1.Taint{{Key: "gpu", Value: "reserved", Effect: corev1.TaintEffectNoSchedule}}
		} else {
			node.Spec.Taints = nil
		}
	} else if node.Labels["zone"] == "a" {
		node.Labels["zone"] = "b"
	} else {
		node.Labels["zone"] = "a"
	}
	c.Sched.UpdateNode(old, node)
	c.GPUs.UpsertNode(node)
	c.Nodes[i] = node
}

// Snapshot brings s up to date the way Karmada's scheduler does
// (UpdateSnapshot, incremental on a reused snapshot); nil starts a new one.
func (c *Churn) Snapshot(s *schedcache.Snapshot) (*schedcache.Snapshot, error) {
	if s == nil {
		s = schedcache.NewEmptySnapshot()
	}
	if err := c.Sched.UpdateSnapshot(s); err != nil {
		return s, fmt.Errorf("update the snapshot: %w", err)
	}
	return s, nil
}
