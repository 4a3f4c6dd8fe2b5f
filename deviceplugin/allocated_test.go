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

func TestAllocatedPatchRetriesOnConflictAndNeverFailsAllocate(t *testing.T) {
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
			pod := podSpec("p", time.Now(), testNode, true, testContainer{name: "c", slots: []string{slot}})
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
			p := indexedPlugin(t, newFakeGPUs(1, 2), pod)
			p.client = client
			if _, err := p.allocate(context.Background(), allocReq(slot)); err != nil {
				t.Fatalf("Allocate failed: %v", err)
			}
			if got := patches.Load(); got != tc.wantPatches {
				t.Errorf("%d patches, want %d", got, tc.wantPatches)
			}
			got, err := client.CoreV1().Pods("default").Get(context.Background(), "p", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			a, err := annotations.DecodeAllocated(got.Annotations[annotations.DefaultKeys().Allocated])
			if recorded := err == nil && a.Has("c"); recorded != tc.wantRecord {
				t.Errorf("annotation records the container: %v, want %v", recorded, tc.wantRecord)
			}
			// Whatever the API did, the in-memory record holds.
			if _, err := p.allocate(context.Background(), allocReq(slot)); err == nil {
				t.Error("the container was served twice")
			}
		})
	}
}
