package server

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// TestPooledSnapshotsMatchFresh checks that requests share the current
// snapshot while nothing changes, that a change never edits a snapshot a
// request holds (the next request gets another, up to date), and that a
// snapshot handed out again after changes (brought up to date
// incrementally) holds what a fresh snapshot holds.
func TestPooledSnapshotsMatchFresh(t *testing.T) {
	nodes, pods := tc.Fragmented(5, 20, 8, 4, []string{"a", "b"})
	extra := tc.Node(tc.NodeSpec{Name: "extra", MilliCPU: 8000, MemoryBytes: 64 << 30, Pods: 110})
	tests := []struct {
		name   string
		change func(c schedcache.Cache)
	}{
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
			cache := newVersionedCache(schedcache.New(0, stop))
			for _, n := range nodes {
				cache.AddNode(n)
			}
			for _, p := range pods {
				if err := cache.AddPod(p); err != nil {
					t.Fatal(err)
				}
			}
			pool := newSnapshots(cache)
			first := acquire(t, pool)
			if second := acquire(t, pool); second != first {
				t.Fatal("two requests with nothing changed in between got different snapshots")
			}
			pool.release(first) // one holder left
			before := describe(t, first)

			tt.change(cache)
			after := acquire(t, pool)
			if after == first {
				t.Fatal("a snapshot a request holds was brought up to date under it")
			}
			if got := describe(t, first); got != before {
				t.Fatalf("the held snapshot changed:\n%s\nwas\n%s", got, before)
			}
			matchesFresh(t, cache, after)
			pool.release(first)
			pool.release(after)

			n := nodes[11].DeepCopy()
			n.Labels["zone"] = "d"
			cache.UpdateNode(nodes[11], n)
			reused := acquire(t, pool)
			if reused != first && reused != after {
				t.Fatal("the pool built a new snapshot instead of reusing one")
			}
			matchesFresh(t, cache, reused)
			pool.release(reused)
		})
	}
}

func acquire(t *testing.T, pool *snapshots) *pooledSnapshot {
	t.Helper()
	s, err := pool.acquire()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// describe lists what the estimate reads of each node of s.
func describe(t *testing.T, s *pooledSnapshot) string {
	t.Helper()
	list, err := s.NodeInfos().List()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, ni := range list {
		fmt.Fprintf(&b, "%s gen %d pods %d cpu %d mem %d zone %s taints %d\n", ni.Node().Name, ni.Generation, len(ni.Pods),
			ni.Requested.MilliCPU, ni.Requested.Memory, ni.Node().Labels["zone"], len(ni.Node().Spec.Taints))
	}
	return b.String()
}

// matchesFresh checks that s holds what a new snapshot of cache holds.
func matchesFresh(t *testing.T, cache schedcache.Cache, s *pooledSnapshot) {
	t.Helper()
	fresh := &pooledSnapshot{Snapshot: schedcache.NewEmptySnapshot()}
	if err := cache.UpdateSnapshot(fresh.Snapshot); err != nil {
		t.Fatal(err)
	}
	if got, want := describe(t, s), describe(t, fresh); got != want {
		t.Errorf("pooled snapshot:\n%s\nfresh:\n%s", got, want)
	}
}

// TestSnapshotsBounded checks that the pool never holds more than
// maxSnapshots: with all of them held and the cache changed, a request
// waits, and gets the one released, brought up to date.
func TestSnapshotsBounded(t *testing.T) {
	nodes, pods := tc.Fragmented(6, 10, 2, 2, []string{"a"})
	stop := make(chan struct{})
	defer close(stop)
	cache := newVersionedCache(schedcache.New(0, stop))
	for _, n := range nodes {
		cache.AddNode(n)
	}
	pool := newSnapshots(cache)
	var held []*pooledSnapshot
	for i := range maxSnapshots {
		if err := cache.AddPod(pods[i]); err != nil {
			t.Fatal(err)
		}
		held = append(held, acquire(t, pool))
	}
	if err := cache.AddPod(pods[maxSnapshots]); err != nil {
		t.Fatal(err)
	}
	got := make(chan *pooledSnapshot)
	go func() {
		s, err := pool.acquire()
		if err != nil {
			t.Error(err)
		}
		got <- s
	}()
	for !waitingRequests(pool) {
		runtime.Gosched()
	}
	pool.release(held[1])
	s := <-got
	if s != held[1] {
		t.Errorf("the request got %p, not the released snapshot %p", s, held[1])
	}
	matchesFresh(t, cache, s)
	if pool.alive != maxSnapshots {
		t.Errorf("the pool holds %d snapshots, want %d", pool.alive, maxSnapshots)
	}
}

func waitingRequests(pool *snapshots) bool {
	pool.mu.Lock()
	defer pool.mu.Unlock()
	return pool.waiting > 0
}
