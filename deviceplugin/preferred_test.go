package deviceplugin

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// indexedPlugin is a plugin that is not running, with pods put straight
// into its index, and a fake kubelet that serves it PodResources (and
// lists the pods tests add with kubelet.AddPod as being admitted).
func indexedPlugin(t testing.TB, gpus *fakeGPUs, pods ...*corev1.Pod) *Plugin {
	t.Helper()
	p, _ := indexedPluginWithKubelet(t, gpus, fake.NewClientset(), pods...)
	return p
}

func indexedPluginWithKubelet(t testing.TB, gpus *fakeGPUs, client *fake.Clientset, pods ...*corev1.Pod) (*Plugin, *fakekubelet.Kubelet) {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	dir, err := os.MkdirTemp("", "ip")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	kubelet, err := fakekubelet.Start(dir, testResource)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kubelet.Stop)
	socket := filepath.Join(dir, "pr.sock")
	if err := kubelet.ServePodResources(socket); err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{
		ResourceName: testResource, NodeName: testNode, DevicePluginDir: dir, StateDir: dir,
		HookLibrary: "/opt/libtessera-hook.so", Keys: annotations.DefaultKeys(), PodResourcesSocket: socket,
	}, gpus, client, record.NewFakeRecorder(100))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.podResources.close)
	p.tune.matchWait = time.Millisecond
	for _, pod := range pods {
		p.index.upsert(pod)
	}
	return p, kubelet
}

func TestPreferredAllocation(t *testing.T) {
	g := func(i, n int) string { return vgpu.SlotID(gpuUUID(i), n) }
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	served := podSpec("served", at(0), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}})
	served.Annotations[annotations.DefaultKeys().Allocated] = `{"version":"v1","containers":["c"]}`
	finished := podSpec("finished", at(0), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}})
	finished.Status.Phase = corev1.PodSucceeded
	tests := []struct {
		name      string
		pods      []*corev1.Pod
		available []string
		must      []string
		size      int
		// admitting are the pods the kubelet lists as being admitted
		// (none: the preference falls back to age order).
		admitting []*corev1.Pod
		want      []string
	}{
		{
			name: "oldest waiting container that fits",
			pods: []*corev1.Pod{
				podSpec("b", at(2), testNode, true, testContainer{name: "c", slots: []string{g(1, 0)}}),
				podSpec("a", at(1), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}}),
			},
			available: []string{g(0, 0), g(0, 1), g(1, 0)}, size: 1, want: []string{g(0, 0)},
		},
		{
			// The case age cannot decide: a younger pod admitted
			// before an older one has reached the kubelet.
			name: "the pod the kubelet admits, though another is older",
			pods: []*corev1.Pod{
				podSpec("b", at(2), testNode, true, testContainer{name: "c", slots: []string{g(1, 0)}}),
				podSpec("a", at(1), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}}),
			},
			admitting: []*corev1.Pod{podSpec("b", at(2), testNode, true, testContainer{name: "c", slots: []string{g(1, 0)}})},
			available: []string{g(0, 0), g(0, 1), g(1, 0)}, size: 1, want: []string{g(1, 0)},
		},
		{
			// The kubelet stable-sorts by creation time over watch
			// order, so a tie goes to the pod that arrived first.
			name: "same creation time: by arrival on the node, not by name",
			pods: []*corev1.Pod{
				podSpec("y", at(1), testNode, true, testContainer{name: "c", slots: []string{g(1, 0)}}),
				podSpec("x", at(1), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}}),
			},
			available: []string{g(0, 0), g(1, 0), g(1, 1)}, size: 1, want: []string{g(1, 0)},
		},
		{
			name: "served and finished pods are skipped",
			pods: []*corev1.Pod{served, finished,
				podSpec("next", at(1), testNode, true, testContainer{name: "c", slots: []string{g(1, 1)}})},
			available: []string{g(0, 0), g(1, 1), g(1, 2)}, size: 1, want: []string{g(1, 1)},
		},
		{
			name: "the size must match",
			pods: []*corev1.Pod{
				podSpec("one", at(1), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}}),
				podSpec("two", at(2), testNode, true, testContainer{name: "c", slots: []string{g(0, 1), g(1, 1)}}),
			},
			available: []string{g(0, 0), g(0, 1), g(1, 1), g(1, 2)}, size: 2, want: []string{g(0, 1), g(1, 1)},
		},
		{
			name: "must-include slots are honoured",
			pods: []*corev1.Pod{
				podSpec("a", at(1), testNode, true, testContainer{name: "c", slots: []string{g(0, 0)}}),
				podSpec("b", at(2), testNode, true, testContainer{name: "c", slots: []string{g(1, 0)}}),
			},
			available: []string{g(0, 0), g(1, 0), g(1, 1)}, must: []string{g(1, 0)}, size: 1, want: []string{g(1, 0)},
		},
		{
			name: "assigned slots taken: other slots of the assigned GPUs",
			pods: []*corev1.Pod{
				podSpec("a", at(1), testNode, true, testContainer{name: "c", slots: []string{g(0, 0), g(1, 0)}}),
			},
			available: []string{g(0, 3), g(0, 2), g(1, 0), g(2, 0)}, size: 2, want: []string{g(0, 2), g(1, 0)},
		},
		{
			name:      "no waiting container: distinct GPUs, fullest first",
			available: []string{g(0, 0), g(0, 1), g(0, 2), g(1, 5), g(2, 1), g(2, 2)}, size: 2,
			want: []string{g(1, 5), g(2, 1)},
		},
		{
			name:      "no waiting container, more slots than GPUs",
			available: []string{g(0, 0), g(0, 1), g(1, 0)}, size: 3,
			want: []string{g(1, 0), g(0, 0), g(0, 1)},
		},
		{
			name:      "no waiting container: must-include first",
			available: []string{g(0, 0), g(0, 1), g(1, 0)}, must: []string{g(0, 1)}, size: 2,
			want: []string{g(0, 1), g(1, 0)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, kubelet := indexedPluginWithKubelet(t, newFakeGPUs(3, 10), fake.NewClientset(), tc.pods...)
			for _, pod := range tc.admitting {
				kubelet.AddPod(pod)
			}
			resp, err := p.getPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
				ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
					AvailableDeviceIDs: tc.available, MustIncludeDeviceIDs: tc.must, AllocationSize: int32(tc.size),
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			got := slices.Sorted(slices.Values(resp.GetContainerResponses()[0].GetDeviceIDs()))
			if want := slices.Sorted(slices.Values(tc.want)); !slices.Equal(got, want) {
				t.Errorf("preferred %v, want %v", got, want)
			}
		})
	}
}

func TestPreferredAllocationRejectsBadRequests(t *testing.T) {
	g := func(i, n int) string { return vgpu.SlotID(gpuUUID(i), n) }
	tests := []struct {
		name string
		req  *pluginapi.ContainerPreferredAllocationRequest
		code codes.Code
	}{
		{"size zero", &pluginapi.ContainerPreferredAllocationRequest{AvailableDeviceIDs: []string{g(0, 0)}}, codes.InvalidArgument},
		{"size beyond available", &pluginapi.ContainerPreferredAllocationRequest{AvailableDeviceIDs: []string{g(0, 0)}, AllocationSize: 2}, codes.InvalidArgument},
		{"nothing available", &pluginapi.ContainerPreferredAllocationRequest{AllocationSize: 1}, codes.InvalidArgument},
		{"unknown slot", &pluginapi.ContainerPreferredAllocationRequest{AvailableDeviceIDs: []string{"GPU-x::0"}, AllocationSize: 1}, codes.NotFound},
		{"must-include not available", &pluginapi.ContainerPreferredAllocationRequest{
			AvailableDeviceIDs: []string{g(0, 0)}, MustIncludeDeviceIDs: []string{g(0, 1)}, AllocationSize: 1}, codes.InvalidArgument},
		{"must-include beyond size", &pluginapi.ContainerPreferredAllocationRequest{
			AvailableDeviceIDs: []string{g(0, 0), g(0, 1)}, MustIncludeDeviceIDs: []string{g(0, 0), g(0, 1)}, AllocationSize: 1}, codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := indexedPlugin(t, newFakeGPUs(1, 4))
			_, err := p.getPreferredAllocation(context.Background(), &pluginapi.PreferredAllocationRequest{
				ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{tc.req},
			})
			if status.Code(err) != tc.code {
				t.Errorf("error %v, want code %s", err, tc.code)
			}
		})
	}
}
