package extender

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

func bindArgs(pod *corev1.Pod, node string) *extenderv1.ExtenderBindingArgs {
	return &extenderv1.ExtenderBindingArgs{PodName: pod.Name, PodNamespace: pod.Namespace, PodUID: pod.UID, Node: node}
}

// apiPod reads a pod from the fake API server.
func apiPod(t testing.TB, client *fake.Clientset, name string) *corev1.Pod {
	t.Helper()
	pod, err := client.CoreV1().Pods("default").Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get pod %s: %v", name, err)
	}
	return pod
}

func podAssignment(t testing.TB, pod *corev1.Pod) annotations.Assignment {
	t.Helper()
	a, err := annotations.DecodeAssignment(pod.Annotations[testKeys.Assignment])
	if err != nil {
		t.Fatalf("pod %s: assignment: %v", pod.Name, err)
	}
	return a
}

func TestBind(t *testing.T) {
	gpus := testGPUs("n", 2, a100, 80*gib, 4)
	tests := []struct {
		name    string
		objs    []runtime.Object
		pod     *corev1.Pod
		args    func(pod *corev1.Pod) *extenderv1.ExtenderBindingArgs
		leader  bool
		wantErr string
		// wantSlots are the slot IDs per container when the bind succeeds.
		wantSlots map[string][]string
	}{{
		name: "two containers on free GPUs",
		pod:  gpuPod("p", ctr{"train", 2, 40 * gib, 60}, ctr{"side", 1, 10 * gib, -1}),
		wantSlots: map[string][]string{
			"train": {"GPU-n-0::0", "GPU-n-1::0"},
			"side":  {"GPU-n-0::1"},
		},
	}, {
		name: "lowest slot numbers that existing assignments leave free",
		objs: []runtime.Object{
			assignedPod(t, "s0", "n", device(gpus[0].UUID, 0, 10*gib, 0)),
			assignedPod(t, "s2", "n", device(gpus[0].UUID, 2, 10*gib, 0)),
			assignedPod(t, "g1", "n", device(gpus[1].UUID, 0, 79*gib, 0)),
		},
		pod:       gpuPod("p", ctr{"main", 1, 10 * gib, -1}),
		wantSlots: map[string][]string{"main": {"GPU-n-0::1"}},
	}, {
		name:    "no longer fits",
		objs:    []runtime.Object{assignedPod(t, "hog", "n", device(gpus[0].UUID, 0, 80*gib, 0))},
		pod:     gpuPod("p", ctr{"main", 2, 20 * gib, -1}),
		wantErr: "1 of 2 GPUs has room",
	}, {
		name:    "invalid request",
		pod:     gpuPod("p", ctr{"main", -1, 20 * gib, -1}),
		wantErr: "without any vGPU",
	}, {
		name: "pod re-created under the same name",
		pod:  gpuPod("p", ctr{"main", 1, 20 * gib, -1}),
		args: func(pod *corev1.Pod) *extenderv1.ExtenderBindingArgs {
			a := bindArgs(pod, "n")
			a.PodUID = "old"
			return a
		},
		wantErr: "re-created",
	}, {
		name:    "unknown node",
		pod:     gpuPod("p", ctr{"main", 1, 20 * gib, -1}),
		args:    func(pod *corev1.Pod) *extenderv1.ExtenderBindingArgs { return bindArgs(pod, "ghost") },
		wantErr: "node ghost is not in the extender's cache",
	}, {
		name: "incomplete call",
		pod:  gpuPod("p", ctr{"main", 1, 20 * gib, -1}),
		args: func(pod *corev1.Pod) *extenderv1.ExtenderBindingArgs {
			a := bindArgs(pod, "n")
			a.PodName = ""
			return a
		},
		wantErr: "must name the pod",
	}, {
		name:    "not the leader",
		pod:     gpuPod("p", ctr{"main", 1, 20 * gib, -1}),
		leader:  false,
		wantErr: "not the leader",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs := append([]runtime.Object{gpuNode(t, "n", gpus), tc.pod}, tc.objs...)
			client := fakeCluster(objs...)
			leader := tc.leader || !strings.Contains(tc.wantErr, "leader")
			e := startExtender(t, t.Context(), client, Options{IsLeader: func() bool { return leader }})
			args := bindArgs(tc.pod, "n")
			if tc.args != nil {
				args = tc.args(tc.pod)
			}
			res := e.Bind(t.Context(), args)
			got := apiPod(t, client, "p")
			if tc.wantErr != "" {
				if !strings.Contains(res.Error, tc.wantErr) {
					t.Fatalf("Error = %q, want it to contain %q", res.Error, tc.wantErr)
				}
				if got.Spec.NodeName != "" || got.Annotations[testKeys.Assignment] != "" {
					t.Errorf("a failed bind left node %q and assignment %q", got.Spec.NodeName, got.Annotations[testKeys.Assignment])
				}
				if n := e.state.inflightCount(); n != 0 {
					t.Errorf("a failed bind left %d reservations", n)
				}
				return
			}
			if res.Error != "" {
				t.Fatalf("Bind: %s", res.Error)
			}
			if got.Spec.NodeName != "n" {
				t.Errorf("pod is bound to %q, want n", got.Spec.NodeName)
			}
			a := podAssignment(t, got)
			if a.Node != "n" || len(a.Containers) != len(tc.wantSlots) {
				t.Fatalf("assignment %+v, want node n and containers %v", a, tc.wantSlots)
			}
			for name, want := range tc.wantSlots {
				c, ok := a.Container(name)
				if !ok {
					t.Fatalf("container %s has no assignment", name)
				}
				var slots []string
				for _, d := range c.Devices {
					slots = append(slots, d.SlotID)
				}
				if strings.Join(slots, ",") != strings.Join(want, ",") {
					t.Errorf("container %s got slots %v, want %v", name, slots, want)
				}
			}
			// A retried call for a pod bound with its assignment succeeds
			// and changes nothing.
			if res := e.Bind(t.Context(), args); res.Error != "" {
				t.Errorf("retried bind: %s", res.Error)
			}
			if again := apiPod(t, client, "p"); again.Annotations[testKeys.Assignment] != got.Annotations[testKeys.Assignment] {
				t.Errorf("a retried bind rewrote the assignment")
			}
		})
	}
}

func TestBindMetrics(t *testing.T) {
	m, reg := testMetrics(t)
	gpus := testGPUs("n", 1, a100, 80*gib, 4)
	ok, unfit := gpuPod("ok", ctr{"main", 1, 60 * gib, -1}), gpuPod("unfit", ctr{"main", 1, 60 * gib, -1})
	client := fakeCluster(gpuNode(t, "n", gpus), ok, unfit)
	e := startExtender(t, t.Context(), client, Options{Metrics: m})
	e.Bind(t.Context(), bindArgs(ok, "n"))
	e.Bind(t.Context(), bindArgs(unfit, "n"))
	checkMetrics(t, reg, map[string]float64{
		"tessera_extender_binds_total/" + BindSucceeded: 1,
		"tessera_extender_binds_total/" + BindUnfit:     1,
		"tessera_extender_binds_total/" + BindAPIError:  0,
		"tessera_extender_bind_duration_seconds":        2,
		// Neither pod was filtered: the refusal is no conflict.
		"tessera_extender_bind_conflicts_total": 0,
	})
	eventually(t, "the informer confirms the reservation", func() bool { return e.state.inflightCount() == 0 })
}

// testMetrics registers the extender's metrics with a registry of their own.
func testMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg
}

// checkMetrics compares the registry's counters and histogram sample counts,
// named "metric" or "metric/label value/...", with want.
func checkMetrics(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			key := f.GetName()
			for _, l := range metric.GetLabel() {
				key += "/" + l.GetValue()
			}
			switch {
			case metric.GetCounter() != nil:
				got[key] = metric.GetCounter().GetValue()
			case metric.GetHistogram() != nil:
				got[key] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, w := range want {
		if v, ok := got[key]; !ok || v != w {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, w)
		}
	}
}

// A Binding that fails after the annotation was written is rolled back:
// the annotation is removed and the capacity is free for the next pod.
func TestBindRollsBackWhenBindingFails(t *testing.T) {
	gpus := testGPUs("n", 1, a100, 80*gib, 4)
	first, second := gpuPod("first", ctr{"main", 1, 80 * gib, -1}), gpuPod("second", ctr{"main", 1, 80 * gib, -1})
	client := fakeCluster(gpuNode(t, "n", gpus), first, second)
	client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		b, isBinding := action.(k8stesting.CreateAction).GetObject().(*corev1.Binding)
		if isBinding && b.Name == "first" {
			return true, nil, errors.New("etcd is on fire")
		}
		return false, nil, nil
	})
	e := startExtender(t, t.Context(), client, Options{})
	if res := e.Bind(t.Context(), bindArgs(first, "n")); !strings.Contains(res.Error, "etcd is on fire") {
		t.Fatalf("Error = %q, want the binding failure", res.Error)
	}
	if got := apiPod(t, client, "first"); got.Annotations[testKeys.Assignment] != "" {
		t.Fatalf("the failed bind left its assignment: %s", got.Annotations[testKeys.Assignment])
	}
	eventually(t, "the informer shows the annotation gone", func() bool {
		p, err := e.podLister.Pods("default").Get("first")
		return err == nil && p.Annotations[testKeys.Assignment] == "" && e.state.inflightCount() == 0
	})
	if res := e.Bind(t.Context(), bindArgs(second, "n")); res.Error != "" {
		t.Fatalf("the rolled-back capacity was not freed: %s", res.Error)
	}
}
