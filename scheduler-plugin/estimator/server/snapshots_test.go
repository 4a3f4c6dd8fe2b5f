package server

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// TestPooledSnapshotsMatchFresh checks that a snapshot handed out again
// after changes (brought up to date incrementally) holds what a fresh
// snapshot holds, and that two requests in flight never share one.
func TestPooledSnapshotsMatchFresh(t *testing.T) {
	nodes, pods := tc.Fragmented(5, 20, 8, 4, []string{"a", "b"})
	extra := tc.Node(tc.NodeSpec{Name: "extra", MilliCPU: 8000, MemoryBytes: 64 << 30, Pods: 110})
	tests := []struct {
		name   string
		change func(c schedcache.Cache)
	}{
		{"nothing", func(schedcache.Cache) {}},
		{"pods removed", func(c schedcache.Cache) {
			for _, p := range pods[:10] {
				if err := c.RemovePod(p); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"node relabelled", func(c schedcache.Cache) {
			n := nodes[3].DeepCopy()
			n.Labels["zone"] = "c"
			n.Spec.Taints = []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}}
			c.UpdateNode(nodes[3], n)
		}},
		{"node added", func(c schedcache.Cache) { c.AddNode(extra) }},
		{"node removed", func(c schedcache.Cache) {
			if err := c.RemoveNode(nodes[7]); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop := make(chan struct{})
			defer close(stop)
			cache := schedcache.New(0, stop)
			for _, n := range nodes {
				cache.AddNode(n)
			}
			for _, p := range pods {
				if err := cache.AddPod(p); err != nil {
					t.Fatal(err)
				}
			}
			pool := &snapshots{cache: cache}
			first, err := pool.acquire()
			if err != nil {
				t.Fatal(err)
			}
			second, err := pool.acquire()
			if err != nil {
				t.Fatal(err)
			}
			if first == second {
				t.Fatal("two requests in flight share a snapshot")
			}
			pool.release(first)
			pool.release(second)

			tt.change(cache)
			reused, err := pool.acquire()
			if err != nil {
				t.Fatal(err)
			}
			if reused != first && reused != second {
				t.Fatal("the pool built a new snapshot instead of reusing one")
			}
			fresh := schedcache.NewEmptySnapshot()
			if err := cache.UpdateSnapshot(fresh); err != nil {
				t.Fatal(err)
			}
			got, err := reused.NodeInfos().List()
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.NodeInfos().List()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("pooled snapshot has %d nodes, fresh %d", len(got), len(want))
			}
			for i := range want {
				g, w := got[i], want[i]
				if g.Node().Name != w.Node().Name || g.Generation != w.Generation || len(g.Pods) != len(w.Pods) ||
					g.Requested.MilliCPU != w.Requested.MilliCPU || g.Requested.Memory != w.Requested.Memory ||
					g.Node().Labels["zone"] != w.Node().Labels["zone"] || len(g.Node().Spec.Taints) != len(w.Node().Spec.Taints) {
					t.Errorf("node %d: pooled %s gen %d pods %d, fresh %s gen %d pods %d", i,
						g.Node().Name, g.Generation, len(g.Pods), w.Node().Name, w.Generation, len(w.Pods))
				}
			}
		})
	}
}
