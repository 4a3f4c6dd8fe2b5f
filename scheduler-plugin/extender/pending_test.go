package extender

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// raceCluster is one node with one 80 GiB GPU and two pods of 60 GiB each:
// either fits, not both.
func raceCluster(t *testing.T, bindWait time.Duration) (*Extender, *prometheus.Registry, *corev1.Pod, *corev1.Pod) {
	t.Helper()
	m, reg := testMetrics(t)
	first, second := gpuPod("first", ctr{"main", 1, 60 * gib, -1}), gpuPod("second", ctr{"main", 1, 60 * gib, -1})
	client := fakeCluster(gpuNode(t, "n", testGPUs("n", 1, a100, 80*gib, 10)), first, second)
	e := startExtender(t, t.Context(), client, Options{Metrics: m, BindWait: bindWait})
	return e, reg, first, second
}

func filterOn(ctx context.Context, e *Extender, pod *corev1.Pod, nodes ...string) *extenderv1.ExtenderFilterResult {
	return e.Filter(ctx, &extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodes})
}

// kube-scheduler filters the next pod while the previous pod's bind is still
// on its way: the filter waits for that bind and sees its reservation, so the
// node it would have offered twice is offered once.
func TestFilterWaitsForTheBindOfThePodFilteredBefore(t *testing.T) {
	e, reg, first, second := raceCluster(t, time.Hour)
	if res := filterOn(t.Context(), e, first, "n"); len(*res.NodeNames) != 1 {
		t.Fatalf("first pod: %+v", res)
	}
	done := make(chan *extenderv1.ExtenderFilterResult)
	go func() { done <- filterOn(t.Context(), e, second, "n") }()
	eventually(t, "the second filter waits", func() bool { return e.pending.waitingCount() == 1 })
	if r := e.Bind(t.Context(), bindArgs(first, "n")); r.Error != "" {
		t.Fatalf("bind first: %s", r.Error)
	}
	res := <-done
	if len(*res.NodeNames) != 0 || !strings.Contains(res.FailedNodes["n"], "needs 1 GPU with 61440 MiB") {
		t.Errorf("second pod: passes %v, failed %v; the first pod's reservation must keep it off n", *res.NodeNames, res.FailedNodes)
	}
	checkMetrics(t, reg, map[string]float64{
		"tessera_extender_filter_bind_waits_total/" + WaitArrived:  1,
		"tessera_extender_filter_bind_waits_total/" + WaitTimedOut: 0,
		"tessera_extender_bind_conflicts_total":                    0,
	})
}

// A pod whose bind never comes (kube-scheduler dropped it after filter)
// delays the next filter by the wait, once; it holds no capacity.
func TestFilterStopsWaitingForABindThatDoesNotCome(t *testing.T) {
	e, reg, first, second := raceCluster(t, 10*time.Millisecond)
	for _, pod := range []*corev1.Pod{first, second, first} {
		if res := filterOn(t.Context(), e, pod, "n"); len(*res.NodeNames) != 1 {
			t.Fatalf("pod %s: %+v; nothing is reserved, n has room", pod.Name, res)
		}
	}
	checkMetrics(t, reg, map[string]float64{
		// The second filter gave up on the first pod, the third (the first
		// pod again) on the second.
		"tessera_extender_filter_bind_waits_total/" + WaitTimedOut: 2,
		"tessera_extender_filter_bind_waits_total/" + WaitArrived:  0,
	})
}

// A later filter waits only for pods whose filter passed a node and whose
// bind has not come: not for a pod that fits nowhere, nor one already
// bound, nor one deleted.
func TestFilterDoesNotWaitWithoutABindToCome(t *testing.T) {
	tests := []struct {
		name string
		// before runs the earlier pod's calls.
		before func(t *testing.T, e *Extender, c *testCluster, earlier *corev1.Pod)
	}{
		{"the earlier pod fits nowhere", func(t *testing.T, e *Extender, _ *testCluster, _ *corev1.Pod) {
			huge := gpuPod("huge", ctr{"main", 1, 100 * gib, -1})
			if res := filterOn(t.Context(), e, huge, "n"); len(*res.NodeNames) != 0 {
				t.Fatalf("a 100 GiB pod fits an 80 GiB GPU: %+v", res)
			}
		}},
		{"the earlier pod is bound", func(t *testing.T, e *Extender, _ *testCluster, earlier *corev1.Pod) {
			filterOn(t.Context(), e, earlier, "n")
			if r := e.Bind(t.Context(), bindArgs(earlier, "n")); r.Error != "" {
				t.Fatalf("bind: %s", r.Error)
			}
		}},
		{"the earlier pod is deleted", func(t *testing.T, e *Extender, c *testCluster, earlier *corev1.Pod) {
			filterOn(t.Context(), e, earlier, "n")
			c.deletePod(t, earlier.Name)
			eventually(t, "the informer delivers the deletion", func() bool {
				e.pending.mu.Lock()
				defer e.pending.mu.Unlock()
				return len(e.pending.pods) == 0
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := testMetrics(t)
			earlier, later := gpuPod("earlier", ctr{"main", 1, 10 * gib, -1}), gpuPod("later", ctr{"main", 1, 10 * gib, -1})
			client := fakeCluster(gpuNode(t, "n", testGPUs("n", 1, a100, 80*gib, 10)), earlier, later)
			// Long enough that a wrong wait shows as a timed-out one.
			e := startExtender(t, t.Context(), client, Options{Metrics: m, BindWait: 2 * time.Second})
			tt.before(t, e, &testCluster{client: client}, earlier)
			if res := filterOn(t.Context(), e, later, "n"); len(*res.NodeNames) != 1 {
				t.Fatalf("later pod: %+v", res)
			}
			checkMetrics(t, reg, map[string]float64{
				"tessera_extender_filter_bind_waits_total/" + WaitArrived:  0,
				"tessera_extender_filter_bind_waits_total/" + WaitTimedOut: 0,
			})
		})
	}
}

// A filter call that ends, while it waits for earlier binds or while its
// workers go through the nodes, answers with an error, never with nodes it
// did not check.
func TestFilterCanceledAnswersAnError(t *testing.T) {
	t.Run("while waiting", func(t *testing.T) {
		e, reg, first, second := raceCluster(t, time.Hour)
		filterOn(t.Context(), e, first, "n")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if res := filterOn(ctx, e, second, "n"); !strings.Contains(res.Error, "while waiting for earlier binds") {
			t.Errorf("canceled filter: %+v", res)
		}
		checkMetrics(t, reg, map[string]float64{"tessera_extender_filter_bind_waits_total/" + WaitCanceled: 1})
	})
	t.Run("while going through the nodes", func(t *testing.T) {
		nodes := names("n", 2*parallelMin)
		objs := []runtime.Object{}
		for _, n := range nodes {
			objs = append(objs, gpuNode(t, n, testGPUs(n, 1, a100, 80*gib, 10)))
		}
		e := startExtender(t, t.Context(), fakeCluster(objs...), Options{BindWait: -1})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := filterOn(ctx, e, gpuPod("p", ctr{"main", 1, gib, -1}), nodes...)
		if !strings.Contains(res.Error, "the call ended") || res.NodeNames != nil {
			t.Errorf("canceled filter: error %q, nodes %v", res.Error, res.NodeNames)
		}
	})
}

// When the second filter does not see the first pod's reservation (the wait
// is off, or gave up on a late bind), both filters offer the node; the
// losing bind is refused and counted as a conflict (a refusal on a node the
// pod's filter passed).
func TestBindConflictsAreCounted(t *testing.T) {
	tests := []struct {
		name     string
		bindWait time.Duration
		// secondFirst: the second pod's bind comes first (the first pod's
		// is late).
		secondFirst bool
	}{
		{"the wait is off", -1, false},
		{"the wait gave up on the first pod's bind", 10 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, reg, first, second := raceCluster(t, tt.bindWait)
			for _, pod := range []*corev1.Pod{first, second} {
				if res := filterOn(t.Context(), e, pod, "n"); len(*res.NodeNames) != 1 {
					t.Fatalf("pod %s: %+v", pod.Name, res)
				}
			}
			winner, loser := first, second
			if tt.secondFirst {
				winner, loser = second, first
			}
			if r := e.Bind(t.Context(), bindArgs(winner, "n")); r.Error != "" {
				t.Fatalf("bind %s: %s", winner.Name, r.Error)
			}
			if r := e.Bind(t.Context(), bindArgs(loser, "n")); r.Error == "" {
				t.Fatal("both pods were given the GPU's memory")
			}
			checkMetrics(t, reg, map[string]float64{
				"tessera_extender_bind_conflicts_total":         1,
				"tessera_extender_binds_total/" + BindUnfit:     1,
				"tessera_extender_binds_total/" + BindSucceeded: 1,
			})
		})
	}
}

// Filter remembers its verdicts per node and request; every change of what
// a node holds must make it decide again.
func TestFilterDecidesAgainWhenTheNodeChanges(t *testing.T) {
	gpus := testGPUs("n", 1, a100, 80*gib, 10)
	tests := []struct {
		name string
		// take makes the 60 GiB pod no longer fit n; give undoes it (nil:
		// not undone).
		take, give func(t *testing.T, e *Extender, c *testCluster)
	}{
		{
			name: "another pod's bind",
			take: func(t *testing.T, e *Extender, c *testCluster) {
				if r := e.Bind(t.Context(), bindArgs(c.other, "n")); r.Error != "" {
					t.Fatalf("bind: %s", r.Error)
				}
			},
			give: func(t *testing.T, _ *Extender, c *testCluster) { c.deletePod(t, c.other.Name) },
		},
		{
			name: "a pod assigned by another extender instance",
			take: func(t *testing.T, _ *Extender, c *testCluster) {
				c.createPod(t, assignedPod(t, "elsewhere", "n", device(gpus[0].UUID, 3, 30*gib, 0)))
			},
			give: func(t *testing.T, _ *Extender, c *testCluster) { c.deletePod(t, "elsewhere") },
		},
		{
			name: "the node's GPU shrinks",
			take: func(t *testing.T, _ *Extender, c *testCluster) {
				c.updateNode(t, gpuNode(t, "n", testGPUs("n", 1, a100, 40*gib, 10)))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := gpuPod("pod", ctr{"main", 1, 60 * gib, -1})
			other := gpuPod("other", ctr{"main", 1, 30 * gib, -1})
			client := fakeCluster(gpuNode(t, "n", gpus), pod, other)
			c := &testCluster{client: client, other: other}
			e := startExtender(t, t.Context(), client, Options{BindWait: -1})
			fits := func() bool { return len(*filterOn(t.Context(), e, pod, "n").NodeNames) == 1 }
			if !fits() {
				t.Fatal("the pod does not fit the empty node")
			}
			tt.take(t, e, c)
			eventually(t, "filter sees the change", func() bool { return !fits() })
			if tt.give != nil {
				tt.give(t, e, c)
				eventually(t, "filter sees the room again", fits)
			}
		})
	}
}

// testCluster changes the fake API server's objects.
type testCluster struct {
	client *fake.Clientset
	other  *corev1.Pod
}

func (c *testCluster) createPod(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	if _, err := c.client.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *testCluster) deletePod(t *testing.T, name string) {
	t.Helper()
	if err := c.client.CoreV1().Pods("default").Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (c *testCluster) updateNode(t *testing.T, node *corev1.Node) {
	t.Helper()
	if _, err := c.client.CoreV1().Nodes().Update(t.Context(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}
