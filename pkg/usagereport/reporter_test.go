package usagereport

import (
	"context"
	"errors"
	"io/fs"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
)

type pods struct {
	list []nodemetrics.AssignedPod
	err  error
}

func (p *pods) AssignedPods() ([]nodemetrics.AssignedPod, []nodemetrics.SkippedPod, error) {
	return p.list, nil, p.err
}

func assigned(name string, containers ...string) nodemetrics.AssignedPod {
	p := nodemetrics.AssignedPod{Namespace: "team", Name: name, UID: "uid-" + name}
	for _, c := range containers {
		p.Assignment.Containers = append(p.Assignment.Containers, annotations.ContainerAssignment{Name: c})
	}
	return p
}

func TestReporter(t *testing.T) {
	const node = "node-1"
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}})
	src := &pods{list: []nodemetrics.AssignedPod{assigned("a", "main", "side"), assigned("b", "main")}}
	used := map[string][]uint64{"uid-a/main": {3 << 30, 1}, "uid-b/main": {0}} // a/side has no region
	regions := func(uid, container string) (nodemetrics.RegionSnapshot, error) {
		devs, ok := used[uid+"/"+container]
		if !ok {
			return nodemetrics.RegionSnapshot{}, fs.ErrNotExist
		}
		var s nodemetrics.RegionSnapshot
		for _, b := range devs {
			s.Devices = append(s.Devices, nodemetrics.RegionDevice{UsedBytes: b})
		}
		return s, nil
	}
	now := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	r, err := New(Options{NodeName: node, Keys: annotations.DefaultKeys(), Pods: src, Regions: regions, Client: client,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		name   string
		change func()
		wrote  bool
	}{
		{"the first report is written", func() {}, true},
		{"nothing changed", func() {}, false},
		{"first use after none is written", func() { used["uid-b/main"] = []uint64{32 << 20} }, true},
		{"a change under 64 MiB waits", func() { used["uid-b/main"] = []uint64{80 << 20} }, false},
		{"a large change is written", func() { used["uid-a/main"] = []uint64{5 << 30} }, true},
		{"a new container is written", func() { used["uid-a/side"] = []uint64{1 << 20} }, true},
		{"an old report is rewritten", func() { now = now.Add(DefaultMaxAge) }, true},
	}
	for _, s := range steps {
		s.change()
		wrote, err := r.Report(ctx)
		if err != nil || wrote != s.wrote {
			t.Fatalf("%s: wrote %v, err %v; want wrote %v", s.name, wrote, err, s.wrote)
		}
	}
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	u, err := annotations.DecodeUsage(n.Annotations[annotations.DefaultKeys().Usage])
	if err != nil {
		t.Fatalf("the written annotation does not decode: %v", err)
	}
	want := map[string]int64{"a/main": 5 << 10, "a/side": 1, "b/main": 80}
	if len(u.Containers) != len(want) || !u.ObservedAt.Equal(now) {
		t.Fatalf("report %+v", u)
	}
	for _, c := range u.Containers {
		if want[c.Pod+"/"+c.Container] != c.MemoryUsedMiB || c.Namespace != "team" {
			t.Errorf("container %+v, want %d MiB", c, want[c.Pod+"/"+c.Container])
		}
	}

	src.err = errors.New("pod cache not synced")
	if _, err := r.Report(ctx); err == nil {
		t.Error("a pod source error was not reported")
	}
}

func TestNewChecksOptions(t *testing.T) {
	if _, err := New(Options{NodeName: "n"}); err == nil {
		t.Error("missing sources accepted")
	}
}
