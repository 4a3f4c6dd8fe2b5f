package nodemetrics

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func encodedAssignment(t testing.TB, node string, containers ...annotations.ContainerAssignment) string {
	t.Helper()
	s, err := annotations.EncodeAssignment(annotations.Assignment{Node: node, Containers: containers})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func kubePod(name, node string, phase corev1.PodPhase, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ml", Name: name, UID: types.UID("uid-" + name), Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase},
	}
}

func podLister(t testing.TB, pods ...*corev1.Pod) corelisters.PodLister {
	t.Helper()
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	return corelisters.NewPodLister(idx)
}

func TestListerPodsPicksAssignedPodsOfTheNode(t *testing.T) {
	keys := annotations.DefaultKeys()
	good := encodedAssignment(t, testNode, ctr("main", device("GPU-a0", 1024, 20)))
	assign := func(v string) map[string]string { return map[string]string{keys.Assignment: v} }
	tests := []struct {
		name        string
		pod         *corev1.Pod
		wantPod     bool
		wantSkipped string
	}{
		{"running pod with an assignment", kubePod("run", testNode, corev1.PodRunning, assign(good)), true, ""},
		{"pending pod already bound counts from allocation on", kubePod("pend", testNode, corev1.PodPending, assign(good)), true, ""},
		{"succeeded pod holds nothing", kubePod("done", testNode, corev1.PodSucceeded, assign(good)), false, ""},
		{"failed pod holds nothing", kubePod("fail", testNode, corev1.PodFailed, assign(good)), false, ""},
		{"pod without GPUs", kubePod("cpu", testNode, corev1.PodRunning, nil), false, ""},
		{"pod of another node", kubePod("other", "node-b", corev1.PodRunning, assign(good)), false, ""},
		{"undecodable assignment", kubePod("bad", testNode, corev1.PodRunning, assign(`{"version":"v1"`)), false, SkipUndecodableAssignment},
		{"unknown version", kubePod("v9", testNode, corev1.PodRunning, assign(strings.Replace(good, `"v1"`, `"v9"`, 1))), false, SkipUndecodableAssignment},
		{"assignment for another node", kubePod("moved", testNode, corev1.PodRunning,
			assign(encodedAssignment(t, "node-b", ctr("main", device("GPU-a0", 1024, 0))))), false, SkipOtherNode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := ListerPods{Lister: podLister(t, tt.pod), Keys: keys, NodeName: testNode}
			pods, skipped, err := src.AssignedPods()
			if err != nil {
				t.Fatal(err)
			}
			if got := len(pods) == 1; got != tt.wantPod {
				t.Fatalf("pods = %+v, want the pod reported: %v", pods, tt.wantPod)
			}
			if tt.wantPod {
				p := pods[0]
				if p.Namespace != "ml" || p.Name != tt.pod.Name || p.UID != string(tt.pod.UID) ||
					len(p.Assignment.Containers) != 1 || p.Assignment.Containers[0].Devices[0].Cores != 20 {
					t.Errorf("pod = %+v, want ml/%s with its decoded assignment", p, tt.pod.Name)
				}
			}
			switch {
			case tt.wantSkipped == "" && len(skipped) != 0:
				t.Errorf("skipped = %+v, want none", skipped)
			case tt.wantSkipped != "" && (len(skipped) != 1 || skipped[0].Reason != tt.wantSkipped || skipped[0].Pod != "ml/"+tt.pod.Name || skipped[0].Err == nil):
				t.Errorf("skipped = %+v, want ml/%s for %s with an error", skipped, tt.pod.Name, tt.wantSkipped)
			}
		})
	}
}

func TestProblemsAreLoggedOnceWhileTheyLast(t *testing.T) {
	var logged []string
	regions := &fakeRegions{errs: map[string]error{"uid-1/main": errors.New("bad magic")}}
	pods := &fakePods{}
	pods.set(pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 1024, 0))))
	c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{}, Pods: pods, Regions: regions.read})
	if err != nil {
		t.Fatal(err)
	}
	c.problems.log = func(key string, err error) { logged = append(logged, key+": "+err.Error()) }
	scrape := func() { testutil.CollectAndCount(c) }
	scrape()
	scrape()
	if len(logged) != 1 || !strings.Contains(logged[0], "ml/train-0/main: bad magic") {
		t.Fatalf("after two scrapes with one problem, logged %q, want it once", logged)
	}
	pods.set() // the problem goes away ...
	scrape()
	pods.set(pod("ml", "train-0", "uid-1", ctr("main", device("GPU-a0", 1024, 0))))
	scrape() // ... and comes back: it is logged again
	if len(logged) != 2 {
		t.Errorf("a problem that returned was not logged again: %q", logged)
	}
}

// FuzzCollectAssignment feeds any assignment annotation through the pod
// adapter into a scrape: it must never panic, never fail the scrape (a
// clash of series would fail it whole), and report one limit series per
// device of every pod it accepted.
func FuzzCollectAssignment(f *testing.F) {
	f.Add(encodedAssignment(f, testNode, ctr("main", device("GPU-a0", 1024, 30))))
	f.Add(encodedAssignment(f, testNode, ctr("a", device("GPU-a0", 1, 0)), ctr("a", device("GPU-a1", 2, 100))))
	f.Add(encodedAssignment(f, testNode, ctr("x", device("GPU-a0", 1<<62, 100), device("GPU-zz", 1<<62, 1))))
	f.Add(`{"version":"v1","node":"node-a","containers":[{"name":"\u00ff\ud800","devices":[{"uuid":"G","slotID":"G::1","memoryMiB":5,"cores":0}]}]}`)
	f.Add(`{"version":"v1","node":"node-b","containers":[]}`)
	f.Add(`not json`)
	f.Fuzz(func(t *testing.T, value string) {
		keys := annotations.DefaultKeys()
		p := kubePod("fuzz", testNode, corev1.PodRunning, map[string]string{keys.Assignment: value})
		assigned, _ := AssignedPodsOf([]*corev1.Pod{p}, keys, testNode)
		regions := &fakeRegions{}
		c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{gpus: []vgpu.GPU{gpuA100(0, true)}},
			Pods: &fakePods{pods: assigned}, Regions: regions.read})
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("scrape failed for annotation %q: %v", value, err)
		}
		want := 0
		if kept, _ := checkPods(assigned); len(kept) == 1 {
			for _, ctr := range kept[0].Assignment.Containers {
				want += len(ctr.Devices)
			}
		}
		if got := testutil.CollectAndCount(c, "tessera_container_memory_limit_bytes"); got != want {
			t.Errorf("annotation %q: %d limit series, want %d", value, got, want)
		}
	})
}

// BenchmarkCollect scrapes a full node: 8 GPUs with 10 single-GPU
// containers each, every container with a region.
func BenchmarkCollect(b *testing.B) {
	var gpus []vgpu.GPU
	var pods []AssignedPod
	regions := &fakeRegions{regions: map[string]RegionSnapshot{}}
	for g := range 8 {
		gpus = append(gpus, gpuA100(g, true))
		for s := range 10 {
			uid := fmt.Sprintf("uid-%d-%d", g, s)
			uuid := fmt.Sprintf("GPU-a%d", g)
			pods = append(pods, pod("ml", "p-"+uid, uid, ctr("main", device(uuid, 4096, 10))))
			regions.regions[uid+"/main"] = RegionSnapshot{Processes: 1, Devices: []RegionDevice{{UUID: uuid, UsedBytes: 1 << 30, KernelLaunches: 100}}}
		}
	}
	c, err := New(Options{NodeName: testNode, GPUs: &fakeGPUs{gpus: gpus}, Pods: &fakePods{pods: pods}, Regions: regions.read})
	if err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
