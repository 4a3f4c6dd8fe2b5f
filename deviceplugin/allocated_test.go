package deviceplugin

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// TestAllocatedPatchRetriesOnConflictAndNeverBlocksLimits: once the
// kubelet's record names a container, its limits are delivered and the pod's
// Allocated annotation records it, retrying on conflicts. An API server that
// refuses the patch for good costs the annotation only, never the limits,
// and a container is delivered (and patched) once, however often the
// resolver looks again. An API server that is unavailable for a while gets
// the patch again at the next pass (the chaos run lost records this way
// when a member's etcd was down).
func conflictErr() error {
	return apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "p", errors.New("stale"))
}

func forbiddenErr() error {
	return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("no"))
}

func unavailableErr() error { return apierrors.NewServiceUnavailable("etcd is down") }

func timeoutErr() error { return apierrors.NewTimeoutError("request did not complete", 1) }

func TestAllocatedPatchRetriesOnConflictAndNeverBlocksLimits(t *testing.T) {
	slot := vgpu.SlotID(gpuUUID(0), 0)
	tests := []struct {
		name string
		// failures is how many patches fail before one succeeds (-1: all).
		failures    int32
		failure     func() error
		wantRecord  bool
		wantPatches int32
	}{
		{"conflict, then success", 1, conflictErr, true, 2},
		{"two conflicts, then success", 2, conflictErr, true, 3},
		{"the API server refuses", -1, forbiddenErr, false, 1},
		{"the API server is unavailable, then back", 1, unavailableErr, true, 2},
		{"the API server times out, then is back", 1, timeoutErr, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := podSpec("p", time.Now(), testNode, true, testContainer{name: "c", slots: []string{slot}, mem: 2048})
			client := fake.NewClientset(pod)
			var patches atomic.Int32
			client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				n := patches.Add(1)
				if tc.failures >= 0 && n > tc.failures {
					return false, nil, nil // The tracker applies it.
				}
				return true, nil, tc.failure()
			})
			p, kubelet := indexedPluginWithKubelet(t, newFakeGPUs(1, 2), client, pod)
			ctx := context.Background()
			resp, err := p.allocate(ctx, allocReq(slot))
			if err != nil {
				t.Fatalf("Allocate failed: %v", err)
			}
			kubelet.Record(pod, "c", []string{slot})
			for range 2 { // The second pass finds it delivered already.
				if _, err := p.resolveOnce(ctx); err != nil {
					t.Fatal(err)
				}
				p.flushRecords(ctx) // What recordLoop does when nudged.
			}
			l, ok, err := ContainerLimits(resp.ContainerResponses[0])
			if err != nil || !ok || l.Refused != "" || len(l.Devices) != 1 || l.Devices[0].MemoryMiB != 2048 {
				t.Errorf("limits %+v (delivered %v, %v), want 2048 MiB on %s", l, ok, err, gpuUUID(0))
			}
			if got := patches.Load(); got != tc.wantPatches {
				t.Errorf("%d patches, want %d", got, tc.wantPatches)
			}
			got, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			a, err := annotations.DecodeAllocated(got.Annotations[annotations.DefaultKeys().Allocated])
			if recorded := err == nil && a.Has("c"); recorded != tc.wantRecord {
				t.Errorf("annotation records the container: %v, want %v", recorded, tc.wantRecord)
			}
		})
	}
}

// TestRestartRecordsWhatAStoppedAgentDidNot: an agent that delivered a
// container's limits but stopped before its Allocated patch went through
// (the API server was down) leaves the record to the next agent: it finds
// the resolved allocation on disk and the container missing from the
// annotation, and patches it. A container the annotation lists already is
// not patched again.
func TestRestartRecordsWhatAStoppedAgentDidNot(t *testing.T) {
	slot := vgpu.SlotID(gpuUUID(0), 0)
	pod := podSpec("p", time.Now(), testNode, true, testContainer{name: "c", slots: []string{slot}, mem: 2048})
	client := fake.NewClientset(pod)
	var patches atomic.Int32
	client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		patches.Add(1)
		return false, nil, nil
	})
	gpus := newFakeGPUs(1, 2)
	p, kubelet := indexedPluginWithKubelet(t, gpus, client, pod)
	ctx := context.Background()
	if _, err := p.allocate(ctx, allocReq(slot)); err != nil {
		t.Fatalf("Allocate failed: %v", err)
	}
	kubelet.Record(pod, "c", []string{slot})
	if _, err := p.resolveOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// The agent stops here: recordLoop never ran.

	for restart, want := range []int32{1, 1} { // The second restart finds it recorded.
		fresh, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		next, err := New(p.opts, gpus, client, p.recorder)
		if err != nil {
			t.Fatal(err)
		}
		next.index.upsert(fresh)
		if err := next.restoreAllocations(ctx); err != nil {
			t.Fatal(err)
		}
		next.flushRecords(ctx)
		next.podResources.close()
		if got := patches.Load(); got != want {
			t.Errorf("restart %d: %d patches in all, want %d", restart+1, got, want)
		}
	}
	got, err := client.CoreV1().Pods("default").Get(ctx, "p", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := annotations.DecodeAllocated(got.Annotations[annotations.DefaultKeys().Allocated]); err != nil || !a.Has("c") {
		t.Errorf("annotation %v (%v), want container c recorded", a, err)
	}
}
