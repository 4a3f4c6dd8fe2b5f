package fleet

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet/fleettest"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

func newTestReader(t *testing.T, k *fleettest.FakeKarmada, clusters ...string) (*Reader, *time.Time) {
	t.Helper()
	r, err := NewReader(k.RESTConfig(), Options{Config: config.Default(), Clusters: clusters, MemberTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	return r, &now
}

func TestReaderReadsEveryMemberAndSurvivesOneDown(t *testing.T) {
	k := fleettest.NewFakeKarmada(t)
	g := testcluster.GPU("x", 0)
	k.SetMember(fleettest.ReadyCluster("member-b"), []*corev1.Node{gpuNode("x", g)},
		[]*corev1.Pod{testcluster.GPUPod("p", "x", 100, 1<<30, share(g, 16*gib, 0))})
	a0 := testcluster.GPU("y", 0)
	k.SetMember(fleettest.ReadyCluster("member-a"), []*corev1.Node{gpuNode("y", a0)}, nil)
	k.SetMember(fleettest.ReadyCluster("member-c"), nil, nil)
	k.SetDown("member-c", http.StatusServiceUnavailable)
	r, now := newTestReader(t, k)
	first := *now

	st, err := r.Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	names := clusterNames(st.Fleet)
	if strings.Join(names, ",") != "member-a,member-b,member-c" {
		t.Fatalf("clusters %v, want sorted a, b, c", names)
	}
	a, b, c := st.Fleet.Clusters[0], st.Fleet.Clusters[1], st.Fleet.Clusters[2]
	if !a.Reachable || !b.Reachable || !a.Ready || a.SyncMode != "Push" || !b.ReadAt.Equal(first) {
		t.Errorf("reachable members: %+v / %+v", a, b)
	}
	if b.Models[0].MemoryMiB.Free != 64*gib || len(b.Pods) != 1 {
		t.Errorf("member-b %+v", b.Models)
	}
	if c.Reachable || !strings.Contains(c.Error, "connection refused") || !c.ReadAt.IsZero() {
		t.Errorf("member-c is not marked unreachable with the reason: %+v", c)
	}
	if len(st.Fleet.Totals) != 1 || st.Fleet.Totals[0].GPUs != 2 || st.Fleet.Totals[0].MemoryMiB.Free != 144*gib {
		t.Errorf("totals %+v", st.Fleet.Totals)
	}

	// member-b goes down: its last data stays, marked, with its age.
	*now = first.Add(time.Minute)
	k.SetDown("member-b", http.StatusBadGateway)
	st, err = r.Read(context.Background())
	if err != nil {
		t.Fatalf("second Read: %v", err)
	}
	b = st.Fleet.Clusters[1]
	if b.Reachable || b.Error == "" || !b.ReadAt.Equal(first) || len(b.Pods) != 1 || b.Models[0].MemoryMiB.Free != 64*gib {
		t.Errorf("member-b after going down: reachable %v, error %q, read at %v, models %+v", b.Reachable, b.Error, b.ReadAt, b.Models)
	}
	if st.Fleet.Totals[0].GPUs != 1 {
		t.Errorf("an unreachable member's stale data is in the totals: %+v", st.Fleet.Totals)
	}
	res, err := st.Fit(context.Background(), shapeRequest(t, Shape{Memory: "8Gi"}))
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	if res.Tessera != 10 || res.Clusters[1].Reachable || res.Clusters[1].Tessera != 8 {
		t.Errorf("fit over a stale member: total %d, member-b %+v", res.Tessera, res.Clusters[1])
	}
}

func TestReaderSelectsClusters(t *testing.T) {
	k := fleettest.NewFakeKarmada(t)
	k.SetMember(fleettest.ReadyCluster("member-a"), nil, nil)
	k.SetMember(fleettest.ReadyCluster("member-b"), nil, nil)
	r, _ := newTestReader(t, k, "member-b")
	st, err := r.Read(context.Background())
	if err != nil || strings.Join(clusterNames(st.Fleet), ",") != "member-b" {
		t.Fatalf("Read with --cluster member-b: %v, %v", err, st)
	}
	r, _ = newTestReader(t, k, "member-x")
	if _, err := r.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "member-x") {
		t.Errorf("an unknown cluster gave %v, want an error naming it", err)
	}
}

func TestReaderWithoutKarmada(t *testing.T) {
	k := fleettest.NewFakeKarmada(t)
	r, _ := newTestReader(t, k)
	k.Server.Close()
	if _, err := r.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "list member clusters") {
		t.Errorf("Read with Karmada down: %v", err)
	}
}

func clusterNames(f Fleet) []string {
	var out []string
	for _, c := range f.Clusters {
		out = append(out, c.Name)
	}
	return out
}

func shapeRequest(t *testing.T, s Shape) FitRequest {
	t.Helper()
	tmpl, err := s.Template(config.Default().Resources)
	if err != nil {
		t.Fatalf("shape %+v: %v", s, err)
	}
	return FitRequest{Template: tmpl}
}
