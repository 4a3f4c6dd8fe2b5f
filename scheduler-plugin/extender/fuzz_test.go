package extender

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// fuzzExtender is an extender over a small cluster: a free node, a busy
// node and a node with an unreadable inventory.
func fuzzExtender(f *testing.F) (http.Handler, *corev1.Pod) {
	gpus := testGPUs("n", 2, a100, 80*gib, 4)
	busy := testGPUs("busy", 1, h100, 80*gib, 4)
	broken := gpuNode(f, "broken", nil)
	broken.Annotations[testKeys.Inventory] = "{"
	pod := gpuPod("p", ctr{"main", 1, 20 * gib, 50})
	client := fakeCluster(gpuNode(f, "n", gpus), gpuNode(f, "busy", busy), broken, pod,
		assignedPod(f, "hog", "busy", device(busy[0].UUID, 0, 70*gib, 90)))
	// No filter is followed by its bind here: without the wait, a fuzzed
	// pod UID does not cost the next input the bind wait.
	e := startExtender(f, f.Context(), client, Options{Recorder: &record.FakeRecorder{}, BindWait: -1})
	return e.Handler(), pod
}

// FuzzExtenderArgs feeds arbitrary bodies to filter and prioritize. Each
// must be answered 200 or 400 with a JSON body, never a panic, and a
// filter answer must put every candidate node in exactly one of the
// passing list and the two failure maps.
func FuzzExtenderArgs(f *testing.F) {
	h, pod := fuzzExtender(f)
	all := []string{"n", "busy", "broken", "ghost"}
	f.Add(mustJSON(f, extenderv1.ExtenderArgs{Pod: pod, NodeNames: &all}))
	f.Add(mustJSON(f, extenderv1.ExtenderArgs{Pod: withAnnotations(gpuPod("o", ctr{"c", 2, 10, 200}), testKeys.GPUPolicy, "x"), NodeNames: &all}))
	f.Add(mustJSON(f, extenderv1.ExtenderArgs{Pod: withAnnotations(gpuPod("o", ctr{"c", 1, -1, -1}, ctr{"d", 1, 1, 1}),
		testKeys.GPUModelInclude, "H100", testKeys.GPUUUIDExclude, "GPU-n-0", testKeys.NodePolicy, "spread"), NodeNames: &all}))
	f.Add(mustJSON(f, extenderv1.ExtenderArgs{Pod: pod, Nodes: &corev1.NodeList{Items: []corev1.Node{{}, *gpuNode(f, "n", nil)}}}))
	f.Add([]byte(`{"Pod":{"metadata":{"name":"x","annotations":{"tessera.io/gpu-assignment":"{\"version\":\"v1\"}"}},"spec":{"containers":[{"name":"c","resources":{"limits":{"tessera.io/vgpu":"1e3","tessera.io/vgpu-memory":"-1"}}}]}},"NodeNames":["n","n"]}`))
	f.Add([]byte(`{"Pod":{"spec":{"containers":[{"resources":{"limits":{"tessera.io/vgpu":"1"},"requests":{"tessera.io/vgpu":"2"}}}]}},"NodeNames":[]}`))
	f.Add([]byte(`{"Pod":null,"NodeNames":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(t, h, FilterPath, body)
		if w.Code != http.StatusOK {
			if w.Code != http.StatusBadRequest {
				t.Fatalf("filter answered %d: %s", w.Code, w.Body)
			}
			return
		}
		var res extenderv1.ExtenderFilterResult
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("filter answer %s is not a filter result: %v", w.Body, err)
		}
		args, err := DecodeExtenderArgs(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("the handler accepted a body that DecodeExtenderArgs rejects: %v", err)
		}
		checkFuzzPartition(t, args, &res)
		if pw := post(t, h, PrioritizePath, body); pw.Code != http.StatusOK {
			t.Fatalf("prioritize answered %d for a body filter accepted: %s", pw.Code, pw.Body)
		}
	})
}

func checkFuzzPartition(t *testing.T, args *extenderv1.ExtenderArgs, res *extenderv1.ExtenderFilterResult) {
	t.Helper()
	if res.Error != "" {
		t.Fatalf("filter gave up with %q instead of failing nodes", res.Error)
	}
	candidates, _ := candidates(args)
	// where counts, per node, the parts of the answer that name it;
	// duplicate candidates are answered alike, so the passing list
	// counts once.
	where := map[string]int{}
	passed := map[string]bool{}
	if res.NodeNames != nil {
		for _, n := range *res.NodeNames {
			passed[n] = true
		}
	} else if res.Nodes != nil {
		for _, n := range res.Nodes.Items {
			passed[n.Name] = true
		}
	}
	for n := range passed {
		where[n]++
	}
	for _, m := range []extenderv1.FailedNodesMap{res.FailedNodes, res.FailedAndUnresolvableNodes} {
		for n, reason := range m {
			where[n]++
			if reason == "" {
				t.Errorf("node %q fails without a reason", n)
			}
		}
	}
	for _, n := range slices.Compact(slices.Sorted(slices.Values(candidates))) {
		if where[n] != 1 {
			t.Errorf("candidate %q is named %d times in the answer", n, where[n])
		}
		delete(where, n)
	}
	for n := range where {
		t.Errorf("the answer names %q, which was not a candidate", n)
	}
}

// FuzzBindingArgs feeds arbitrary bodies to bind: 200 with a binding
// result, or 400, and never a panic.
func FuzzBindingArgs(f *testing.F) {
	h, pod := fuzzExtender(f)
	f.Add(mustJSON(f, extenderv1.ExtenderBindingArgs{PodName: pod.Name, PodNamespace: pod.Namespace, PodUID: pod.UID, Node: "n"}))
	f.Add(mustJSON(f, extenderv1.ExtenderBindingArgs{PodName: pod.Name, PodNamespace: pod.Namespace, PodUID: pod.UID, Node: "broken"}))
	f.Add([]byte(`{"PodName":"hog","PodNamespace":"default","PodUID":"uid-hog","Node":"n"}`))
	f.Add([]byte(`{"PodName":"../x","PodNamespace":"","Node":""}`))
	f.Add([]byte(`{"PodUID":{}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		w := post(t, h, BindPath, body)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("bind answered %d: %s", w.Code, w.Body)
		}
		var res extenderv1.ExtenderBindingResult
		if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
			t.Fatalf("bind answer %s is not a binding result: %v", w.Body, err)
		}
		if w.Code == http.StatusBadRequest && res.Error == "" {
			t.Fatalf("a rejected bind has no error message")
		}
	})
}
