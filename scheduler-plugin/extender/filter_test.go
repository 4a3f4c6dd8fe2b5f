package extender

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

const a100, h100 = "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"

// filterCluster has: "a100" (2 free A100s), "h100" (2 free H100s), "busy"
// (2 A100s whose memory is nearly all taken), "bare" (no inventory) and
// "broken" (an inventory that does not decode).
func filterCluster(t *testing.T) []runtime.Object {
	busyGPUs := testGPUs("busy", 2, a100, 80*gib, 10)
	broken := gpuNode(t, "broken", testGPUs("broken", 1, a100, 80*gib, 10))
	broken.Annotations[testKeys.Inventory] = `{"version":"v9","gpus":[]}`
	bare := gpuNode(t, "bare", nil)
	delete(bare.Annotations, testKeys.Inventory)
	return []runtime.Object{
		gpuNode(t, "a100", testGPUs("a100", 2, a100, 80*gib, 10)),
		gpuNode(t, "h100", testGPUs("h100", 2, h100, 80*gib, 10)),
		gpuNode(t, "busy", busyGPUs),
		bare, broken,
		assignedPod(t, "hog0", "busy", device(busyGPUs[0].UUID, 0, 70*gib, 10)),
		assignedPod(t, "hog1", "busy", device(busyGPUs[1].UUID, 0, 70*gib, 10)),
	}
}

func TestFilter(t *testing.T) {
	e, client, rec := newTestExtender(t, filterCluster(t)...)
	all := []string{"a100", "h100", "busy", "bare", "broken", "ghost"}
	tests := []struct {
		name string
		pod  *corev1.Pod
		// pass are the nodes that must pass; failed and unresolvable map
		// nodes to a fragment of their reason.
		pass         []string
		failed       map[string]string
		unresolvable map[string]string
		event        string
	}{{
		name:         "fits where a GPU has room",
		pod:          gpuPod("small", ctr{"main", 1, 20 * gib, 30}),
		pass:         []string{"a100", "h100"},
		failed:       map[string]string{"busy": "without enough free memory"},
		unresolvable: map[string]string{"bare": "no Tessera GPU inventory", "broken": `version "v9" is not supported`, "ghost": "not in the extender's cache"},
	}, {
		name:   "memory larger than any GPU",
		pod:    gpuPod("huge", ctr{"main", 1, 100 * gib, -1}),
		failed: map[string]string{"a100": "102400 MiB", "h100": "102400 MiB", "busy": "102400 MiB"},
		event:  ReasonUnschedulable,
	}, {
		name:         "vgpu-memory without vgpu",
		pod:          gpuPod("memonly", ctr{"main", -1, 10 * gib, -1}),
		unresolvable: map[string]string{"a100": "without any vGPU", "ghost": "without any vGPU"},
		event:        ReasonInvalidRequest,
	}, {
		name:         "cores over 100 per GPU",
		pod:          gpuPod("greedy", ctr{"main", 1, 10 * gib, 150}),
		unresolvable: map[string]string{"a100": "more than 100% per GPU"},
		event:        ReasonInvalidRequest,
	}, {
		name:         "unknown policy value",
		pod:          withAnnotations(gpuPod("fast", ctr{"main", 1, 10 * gib, -1}), testKeys.GPUPolicy, "fastest"),
		unresolvable: map[string]string{"h100": `annotation tessera.io/gpu-policy: unknown policy "fastest"`},
		event:        ReasonInvalidRequest,
	}, {
		name:         "undecodable option list",
		pod:          withAnnotations(gpuPod("ctl", ctr{"main", 1, 10 * gib, -1}), testKeys.GPUUUIDInclude, "GPU-a\x01"),
		unresolvable: map[string]string{"a100": "control characters"},
		event:        ReasonInvalidRequest,
	}, {
		name:   "model include",
		pod:    withAnnotations(gpuPod("inc", ctr{"main", 1, 10 * gib, -1}), testKeys.GPUModelInclude, "h100"),
		pass:   []string{"h100"},
		failed: map[string]string{"a100": "2 excluded by model selector"},
	}, {
		name:   "model exclude",
		pod:    withAnnotations(gpuPod("exc", ctr{"main", 1, 12 * gib, -1}), testKeys.GPUModelExclude, "H100"),
		pass:   []string{"a100"},
		failed: map[string]string{"h100": "excluded by model selector"},
	}, {
		name:   "UUID include",
		pod:    withAnnotations(gpuPod("uinc", ctr{"main", 2, 10 * gib, -1}), testKeys.GPUUUIDInclude, "GPU-h100-1, GPU-a100-0,GPU-a100-1"),
		pass:   []string{"a100"},
		failed: map[string]string{"h100": "1 excluded by UUID selector"},
	}, {
		name:   "UUID exclude",
		pod:    withAnnotations(gpuPod("uexc", ctr{"main", 2, 24 * gib, -1}), testKeys.GPUUUIDExclude, "GPU-a100-1"),
		pass:   []string{"h100"},
		failed: map[string]string{"a100": "excluded by UUID selector"},
	}, {
		name: "a zero vGPU request passes everywhere",
		pod:  gpuPod("none", ctr{"main", 0, -1, -1}),
		pass: all,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			drainEvents(rec)
			nodeNames := slices.Clone(all)
			res := e.Filter(t.Context(), &extenderv1.ExtenderArgs{Pod: tc.pod, NodeNames: &nodeNames})
			if res.Error != "" {
				t.Fatalf("Error = %q", res.Error)
			}
			checkPartition(t, all, res)
			passed := *res.NodeNames
			for _, n := range tc.pass {
				if !slices.Contains(passed, n) {
					t.Errorf("node %s did not pass; failed: %q %q", n, res.FailedNodes[n], res.FailedAndUnresolvableNodes[n])
				}
			}
			if len(passed) != len(tc.pass) {
				t.Errorf("passed %v, want %v", passed, tc.pass)
			}
			checkReasons(t, "FailedNodes", res.FailedNodes, tc.failed)
			checkReasons(t, "FailedAndUnresolvableNodes", res.FailedAndUnresolvableNodes, tc.unresolvable)
			events := drainEvents(rec)
			if tc.event == "" && len(events) > 0 {
				t.Errorf("unexpected events %q", events)
			}
			if tc.event != "" && !slices.ContainsFunc(events, func(ev string) bool { return strings.Contains(ev, tc.event) }) {
				t.Errorf("events %q lack %s", events, tc.event)
			}
		})
	}
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Errorf("filter made a %s %s call; it must have no side effects", a.GetVerb(), a.GetResource().Resource)
		}
	}
	if n := e.state.inflightCount(); n != 0 {
		t.Errorf("filter left %d reservations", n)
	}
}

// checkPartition asserts that every candidate is in exactly one of the
// passing list and the two failure maps.
func checkPartition(t *testing.T, candidates []string, res *extenderv1.ExtenderFilterResult) {
	t.Helper()
	seen := map[string]int{}
	if res.NodeNames != nil {
		for _, n := range *res.NodeNames {
			seen[n]++
		}
	}
	if res.Nodes != nil {
		for _, n := range res.Nodes.Items {
			seen[n.Name]++
		}
	}
	for n := range res.FailedNodes {
		seen[n]++
	}
	for n := range res.FailedAndUnresolvableNodes {
		seen[n]++
	}
	for _, n := range candidates {
		if seen[n] != 1 {
			t.Errorf("node %s appears %d times in the result", n, seen[n])
		}
		delete(seen, n)
	}
	for n := range seen {
		t.Errorf("result names node %s that was not a candidate", n)
	}
}

func checkReasons(t *testing.T, field string, got extenderv1.FailedNodesMap, want map[string]string) {
	t.Helper()
	for node, fragment := range want {
		if !strings.Contains(got[node], fragment) {
			t.Errorf("%s[%s] = %q, want it to contain %q", field, node, got[node], fragment)
		}
	}
}

func TestFilterWithWholeNodes(t *testing.T) {
	objs := filterCluster(t)
	e, _, _ := newTestExtender(t, objs...)
	list := &corev1.NodeList{}
	for _, o := range objs {
		if n, ok := o.(*corev1.Node); ok {
			list.Items = append(list.Items, *n)
		}
	}
	res := e.Filter(t.Context(), &extenderv1.ExtenderArgs{Pod: gpuPod("p", ctr{"main", 1, 20 * gib, -1}), Nodes: list})
	if res.NodeNames != nil || res.Nodes == nil {
		t.Fatalf("a call with Nodes must be answered with Nodes: %+v", res)
	}
	var got []string
	for _, n := range res.Nodes.Items {
		got = append(got, n.Name)
	}
	if want := []string{"a100", "h100"}; !slices.Equal(got, want) {
		t.Errorf("passing nodes %v, want %v", got, want)
	}
	checkPartition(t, []string{"a100", "h100", "busy", "bare", "broken"}, res)
}

// A pod whose earlier bind failed after its annotation was written carries
// a stale claim; it must not keep the pod off that very node.
func TestFilterIgnoresThePodsOwnStaleClaim(t *testing.T) {
	gpus := testGPUs("n", 1, a100, 80*gib, 10)
	stale := assignedPod(t, "retry", "n", device(gpus[0].UUID, 0, 80*gib, 0))
	stale.Spec.NodeName, stale.Status.Phase = "", corev1.PodPending
	other := gpuPod("other", ctr{"main", 1, 80 * gib, -1})
	e, _, _ := newTestExtender(t, gpuNode(t, "n", gpus), stale, other)
	nodes := []string{"n"}
	if res := e.Filter(t.Context(), &extenderv1.ExtenderArgs{Pod: stale, NodeNames: &nodes}); len(*res.NodeNames) != 1 {
		t.Errorf("the pod is kept off its own node by its stale claim: %v", res.FailedNodes)
	}
	if res := e.Filter(t.Context(), &extenderv1.ExtenderArgs{Pod: other, NodeNames: &nodes}); len(*res.NodeNames) != 0 {
		t.Errorf("another pod ignores the stale claim, which must hold the GPU until it is rewritten")
	}
}

func TestPrioritize(t *testing.T) {
	used := testGPUs("used", 2, a100, 80*gib, 10)
	objs := []runtime.Object{
		gpuNode(t, "empty", testGPUs("empty", 2, a100, 80*gib, 10)),
		gpuNode(t, "used", used),
		gpuNode(t, "full", testGPUs("full", 1, a100, 10*gib, 10)),
		assignedPod(t, "u0", "used", device(used[0].UUID, 0, 60*gib, 60)),
	}
	e, _, _ := newTestExtender(t, objs...)
	tests := []struct {
		policy string
		// better must score strictly higher than worse.
		better, worse string
	}{
		{"", "used", "empty"}, // binpack is the default
		{"binpack", "used", "empty"},
		{"spread", "empty", "used"},
		{"spread", "used", "full"}, // does not fit: scores 0
	}
	for _, tc := range tests {
		t.Run(tc.policy+"/"+tc.better, func(t *testing.T) {
			pod := gpuPod("p", ctr{"main", 1, 16 * gib, -1})
			if tc.policy != "" {
				pod.Annotations[testKeys.NodePolicy] = tc.policy
			}
			nodes := []string{"empty", "used", "full", "ghost"}
			scores, err := e.Prioritize(t.Context(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodes})
			if err != nil {
				t.Fatalf("Prioritize: %v", err)
			}
			byHost := map[string]int64{}
			for _, s := range scores {
				if s.Score < extenderv1.MinExtenderPriority || s.Score > extenderv1.MaxExtenderPriority {
					t.Errorf("score %d of %s is out of range", s.Score, s.Host)
				}
				byHost[s.Host] = s.Score
			}
			if len(byHost) != len(nodes) {
				t.Errorf("scores %v do not cover %v", scores, nodes)
			}
			if byHost[tc.better] <= byHost[tc.worse] {
				t.Errorf("%s scores %d, %s %d; want the first higher", tc.better, byHost[tc.better], tc.worse, byHost[tc.worse])
			}
			if byHost["full"] != 0 || byHost["ghost"] != 0 {
				t.Errorf("nodes where the pod cannot go score %d and %d, want 0", byHost["full"], byHost["ghost"])
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	res := &extenderv1.ExtenderFilterResult{
		FailedNodes:                extenderv1.FailedNodesMap{"a": "x", "b": "x", "c": "y", "d": "z"},
		FailedAndUnresolvableNodes: extenderv1.FailedNodesMap{"e": "w"},
	}
	got := summarize(res)
	want := "2 node(s): x; 1 node(s): w; 1 node(s): y; and 1 other reasons"
	if got != want {
		t.Errorf("summarize = %q, want %q", got, want)
	}
}

// With many candidates filter and prioritize spread the nodes over workers;
// the answer must be the same as one node at a time, in the call's order.
func TestFilterManyNodesInParallel(t *testing.T) {
	var objs []runtime.Object
	nodeNames := names("node-", 3*parallelMin)
	var want []string
	for i, n := range nodeNames {
		gpus := testGPUs(n, 1, a100, 80*gib, 10)
		objs = append(objs, gpuNode(t, n, gpus))
		if i%3 == 0 {
			objs = append(objs, assignedPod(t, "hog-"+n, n, device(gpus[0].UUID, 0, 80*gib, 0)))
			continue
		}
		want = append(want, n)
	}
	e, _, _ := newTestExtender(t, objs...)
	pod := gpuPod("p", ctr{"main", 1, 8 * gib, -1})
	res := e.Filter(t.Context(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodeNames})
	if !slices.Equal(*res.NodeNames, want) {
		t.Errorf("passed %d nodes, want %d in call order", len(*res.NodeNames), len(want))
	}
	checkPartition(t, nodeNames, res)
	scores, err := e.Prioritize(t.Context(), &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodeNames})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range scores {
		if s.Host != nodeNames[i] || (s.Score == 0) != (i%3 == 0) {
			t.Errorf("score %d: %+v; want host %s scored 0 only where full", i, s, nodeNames[i])
		}
	}
}
