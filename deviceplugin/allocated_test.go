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
// refuses the patch costs the annotation only, never the limits, and a
// container is delivered (and patched) once, however often the resolver
// looks again.
func TestAllocatedPatchRetriesOnConflictAndNeverBlocksLimits(t *testing.T) {
	slot := vgpu.SlotID(gpuUUID(0), 0)
	tests := []struct {
		name string
		// failures is how many patches fail before one succeeds (-1: all).
		failures    int32
		conflict    bool
		wantRecord  bool
		wantPatches int32
	}{
		{"conflict, then success", 1, true, true, 2},
		{"two conflicts, then success", 2, true, true, 3},
		{"the API server refuses", -1, false, false, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pod := podSpec("p", time.Now(), testNode, true, testContainer{name: "c", slots: []string{slot}, mem: 2048})
			client := fake.NewClientset(pod)
			var patches atomic.Int32
			client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
				n := patches.Add(1)
				switch {
				case tc.failures >= 0 && n > tc.failures:
					return false, nil, nil // The tracker applies it.
				case tc.conflict:
					return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "p", errors.New("stale"))
				default:
					return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "p", errors.New("no"))
				}
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
