package deviceplugin

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// pluginWithLaggingInformer is a plugin whose index holds only indexed,
// while the API server (the fake clientset) also holds unseen, which the
// kubelet is admitting: the state when the kubelet admits a pod the
// plugin's informer has not delivered.
func pluginWithLaggingInformer(t *testing.T, indexed, unseen []*corev1.Pod) *Plugin {
	t.Helper()
	var objects []runtime.Object
	for _, pod := range slices.Concat(indexed, unseen) {
		objects = append(objects, pod)
	}
	p, kubelet := indexedPluginWithKubelet(t, newFakeGPUs(2, 10), fake.NewClientset(objects...), indexed...)
	for _, pod := range unseen {
		kubelet.AddPod(pod)
	}
	return p
}

func TestKubeletCallsForPodsTheInformerHasNotDelivered(t *testing.T) {
	g := func(i, n int) string { return vgpu.SlotID(gpuUUID(i), n) }
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// older is admitted first by the kubelet but not yet in the index;
	// younger is in the index. Both ask for one GPU.
	older := podSpec("older", t0, testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}, mem: 1024})
	younger := podSpec("younger", t0.Add(time.Second), testNode, true, testContainer{name: "c", slots: []string{g(1, 0)}, mem: 40960})
	free := []string{g(0, 0), g(0, 1), g(1, 0), g(1, 1)}

	t.Run("preferred allocation", func(t *testing.T) {
		p := pluginWithLaggingInformer(t, []*corev1.Pod{younger}, []*corev1.Pod{older})
		resp, err := p.getPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
			ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{AvailableDeviceIDs: free, AllocationSize: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.ContainerResponses[0].DeviceIDs; !slices.Equal(got, []string{g(0, 0)}) {
			t.Fatalf("preferred %v, want the older pod's slot %s (the younger pod's slot would hand it the wrong GPU)", got, g(0, 0))
		}
	})
	t.Run("allocate on other slots of the same GPU", func(t *testing.T) {
		p := pluginWithLaggingInformer(t, []*corev1.Pod{younger}, []*corev1.Pod{older})
		resp, err := p.allocate(context.Background(), &pluginapi.AllocateRequest{
			ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{g(0, 1)}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := envGPUs(resp.ContainerResponses[0]); !slices.Equal(got, []string{gpuUUID(0)}) {
			t.Fatalf("allocated GPUs %v, want the older pod's GPU %s", got, gpuUUID(0))
		}
	})
	t.Run("a deleted pod is not brought back", func(t *testing.T) {
		p := pluginWithLaggingInformer(t, []*corev1.Pod{younger, older}, nil)
		p.index.remove(older.UID)
		if p.index.addIfUnknown(older) {
			t.Fatal("addIfUnknown re-added a pod the informer had deleted")
		}
	})
}
