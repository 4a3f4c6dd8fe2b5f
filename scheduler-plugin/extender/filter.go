package extender

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// errNoCandidates is the answer to a call that names no nodes at all.
var errNoCandidates = errors.New("the call names no candidate nodes (neither NodeNames nor Nodes)")

// candidates returns the node names of a filter or prioritize call. With
// nodeCacheCapable kube-scheduler sends NodeNames; a scheduler configured
// without it sends whole Nodes, and their names are used the same way.
func candidates(args *extenderv1.ExtenderArgs) ([]string, error) {
	switch {
	case args.NodeNames != nil:
		return *args.NodeNames, nil
	case args.Nodes != nil:
		names := make([]string, len(args.Nodes.Items))
		for i := range args.Nodes.Items {
			names[i] = args.Nodes.Items[i].Name
		}
		return names, nil
	}
	return nil, errNoCandidates
}

// Filter keeps the candidate nodes where the pod's GPU containers fit, as
// vgpu.Place decides, and gives every other node the reason. It reserves
// nothing: capacity is taken at bind time only, so a filtered pod that is
// never bound holds nothing.
func (e *Extender) Filter(ctx context.Context, args *extenderv1.ExtenderArgs) *extenderv1.ExtenderFilterResult {
	defer e.metrics.observeFilter(time.Now())
	logger := klog.FromContext(ctx)
	if args.Pod == nil {
		return &extenderv1.ExtenderFilterResult{Error: "filter: the call carries no pod"}
	}
	pod := args.Pod
	names, err := candidates(args)
	if err != nil {
		return &extenderv1.ExtenderFilterResult{Error: fmt.Sprintf("filter pod %s: %v", podRef(pod), err)}
	}
	// Reads only: the pods filtered before this one reserve in their binds,
	// and this filter should see what they took.
	waited := e.pending.await(ctx, pod.UID, time.Now(), e.bindWait)
	e.metrics.observeBindWait(waited)
	if waited == WaitCanceled {
		return &extenderv1.ExtenderFilterResult{Error: fmt.Sprintf("filter pod %s: the call ended while waiting for earlier binds: %v", podRef(pod), context.Cause(ctx))}
	}
	result := &extenderv1.ExtenderFilterResult{
		FailedNodes:                extenderv1.FailedNodesMap{},
		FailedAndUnresolvableNodes: extenderv1.FailedNodesMap{},
	}
	req, err := gpustate.PodRequest(pod, e.cfg)
	if err != nil {
		// No node can help and preemption cannot either: the pod stays
		// Pending with this reason until its spec or annotations change.
		msg := fmt.Sprintf("invalid GPU request: %v", err)
		for _, n := range names {
			result.FailedAndUnresolvableNodes[n] = msg
		}
		logger.Info("Pod's GPU request cannot be read", "pod", klog.KObj(pod), "err", err)
		e.recorder.Event(pod, corev1.EventTypeWarning, ReasonInvalidRequest, msg)
		return e.finishFilter(args, result, nil)
	}
	if !asksForGPUs(req) {
		return e.finishFilter(args, result, names)
	}
	key, err := newRequestKey(req)
	if err != nil {
		return &extenderv1.ExtenderFilterResult{Error: fmt.Sprintf("filter pod %s: %v", podRef(pod), err)}
	}
	fitErrs := make([]error, len(names))
	states := e.state.getAll(names)
	parallelize(ctx, len(names), func(i int) { fitErrs[i] = e.fitsNode(names[i], states[i], pod, req, key) })
	if err := context.Cause(ctx); err != nil {
		// The workers stop early when the call ends: nodes they skipped
		// would look as if they passed.
		return &extenderv1.ExtenderFilterResult{Error: fmt.Sprintf("filter pod %s: the call ended: %v", podRef(pod), err)}
	}
	passed := make([]string, 0, len(names))
	for i, n := range names {
		err := fitErrs[i]
		switch {
		case err == nil:
			passed = append(passed, n)
		case isUnfit(err):
			result.FailedNodes[n] = err.Error()
		default:
			result.FailedAndUnresolvableNodes[n] = err.Error()
		}
	}
	if len(passed) == 0 && len(names) > 0 {
		msg := "no node has room for the pod's GPUs: " + summarize(result)
		logger.V(2).Info("Pod fits no candidate node", "pod", klog.KObj(pod), "nodes", len(names), "reasons", msg)
		e.recorder.Event(pod, corev1.EventTypeWarning, ReasonUnschedulable, msg)
	}
	if len(passed) > 0 {
		e.pending.expect(pod.UID, passed, time.Now())
	}
	return e.finishFilter(args, result, passed)
}

// isUnfit reports whether err says the pod does not fit (as opposed to a
// node that cannot be read). A function of its own so that its target
// escapes to the heap only for nodes that fail, not for every node.
func isUnfit(err error) bool {
	var unfit *vgpu.Unfit
	return errors.As(err, &unfit)
}

// parallelMin is the candidate count from which filter and prioritize
// spread nodes over workers; below it the goroutines cost more than they save.
const parallelMin = 64

// parallelize calls fn(0..n-1) on up to GOMAXPROCS workers (16 at most,
// kube-scheduler's own parallelism). Nodes are independent: each one is
// read under its own lock.
func parallelize(ctx context.Context, n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), 16)
	if n < parallelMin || workers < 2 {
		for i := range n {
			fn(i)
		}
		return
	}
	workqueue.ParallelizeUntil(ctx, workers, n, fn, workqueue.WithChunkSize(16))
}

// fitsNode runs the fit algorithm on one node's current state, or recalls
// its verdict when the node has not changed since the same request was
// last asked about. s is the node's state, nil when it has none; key is
// req's.
func (e *Extender) fitsNode(name string, s *nodeState, pod *corev1.Pod, req vgpu.PodRequest, key requestKey) error {
	if s == nil {
		return fmt.Errorf("node %s is not in the extender's cache (yet)", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	view := s.viewExcludingLocked(e.keys, pod.UID)
	switch {
	case view.err != nil:
		return view.err
	case !view.hasInventory:
		return fmt.Errorf("node %s publishes no Tessera GPU inventory (annotation %s)", name, e.keys.Inventory)
	}
	return s.fitLocked(view, req, key)
}

// viewFor returns a node's GPU state as seen by a pod: without the pod's own
// (stale) claim, if it has one.
func (e *Extender) viewFor(name string, pod *corev1.Pod) *nodeView {
	s := e.state.get(name, false)
	if s == nil {
		return &nodeView{err: fmt.Errorf("node %s is not in the extender's cache (yet)", name)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.viewExcludingLocked(e.keys, pod.UID)
}

// finishFilter fills in the passing nodes in the form the call used.
func (e *Extender) finishFilter(args *extenderv1.ExtenderArgs, result *extenderv1.ExtenderFilterResult, passed []string) *extenderv1.ExtenderFilterResult {
	if passed == nil {
		passed = []string{}
	}
	if args.NodeNames != nil {
		result.NodeNames = &passed
		return result
	}
	keep := make(map[string]bool, len(passed))
	for _, n := range passed {
		keep[n] = true
	}
	list := &corev1.NodeList{}
	for i := range args.Nodes.Items {
		if keep[args.Nodes.Items[i].Name] {
			list.Items = append(list.Items, args.Nodes.Items[i])
		}
	}
	result.Nodes = list
	return result
}

// summarize lists the distinct failure reasons, most frequent first, like
// kube-scheduler's own "0/20 nodes are available" message.
func summarize(result *extenderv1.ExtenderFilterResult) string {
	counts := map[string]int{}
	for _, m := range []extenderv1.FailedNodesMap{result.FailedNodes, result.FailedAndUnresolvableNodes} {
		for _, reason := range m {
			counts[reason]++
		}
	}
	reasons := slices.SortedFunc(maps.Keys(counts), func(a, b string) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), strings.Compare(a, b))
	})
	const most = 3
	parts := make([]string, 0, most+1)
	for i, r := range reasons {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d other reasons", len(reasons)-most))
			break
		}
		parts = append(parts, fmt.Sprintf("%d node(s): %s", counts[r], r))
	}
	return strings.Join(parts, "; ")
}

func asksForGPUs(req vgpu.PodRequest) bool {
	return slices.ContainsFunc(req.Containers, func(c vgpu.ContainerRequest) bool { return c.GPUs > 0 })
}

// Prioritize scores the candidate nodes 0..MaxExtenderPriority by the pod's
// node policy (binpack prefers nodes whose GPUs are already in use, spread
// the emptiest), as vgpu.NodeScore computes it. Nodes where the pod does not
// fit score 0; filter has removed them already.
func (e *Extender) Prioritize(ctx context.Context, args *extenderv1.ExtenderArgs) (extenderv1.HostPriorityList, error) {
	defer e.metrics.observePrioritize(time.Now())
	if args.Pod == nil {
		return nil, errors.New("prioritize: the call carries no pod")
	}
	pod := args.Pod
	names, err := candidates(args)
	if err != nil {
		return nil, fmt.Errorf("prioritize pod %s: %w", podRef(pod), err)
	}
	scores := make(extenderv1.HostPriorityList, len(names))
	for i, n := range names {
		scores[i].Host = n
	}
	req, reqErr := gpustate.PodRequest(pod, e.cfg)
	opts, optsErr := annotations.DecodePodOptions(e.keys, pod.Annotations)
	if err := errors.Join(reqErr, optsErr); err != nil || !asksForGPUs(req) {
		// Filter has already reported an unreadable request; equal scores
		// leave the choice to kube-scheduler's own plugins.
		return scores, nil
	}
	parallelize(ctx, len(names), func(i int) {
		view := e.viewFor(names[i], pod)
		if view.err != nil || !view.hasInventory {
			return
		}
		// 1..100 maps onto 1..10 rounding up, so that every node where the
		// pod fits scores above one where it does not.
		score := int64(min(max(vgpu.NodeScore(view.devices, req, opts.NodePolicy), 0), 100))
		scores[i].Score = (score*extenderv1.MaxExtenderPriority + 99) / 100
	})
	klog.FromContext(ctx).V(4).Info("Prioritized nodes", "pod", klog.KObj(pod), "policy", opts.NodePolicy, "nodes", len(names))
	return scores, nil
}
