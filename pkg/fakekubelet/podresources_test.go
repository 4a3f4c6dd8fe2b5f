package fakekubelet

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// listed is what PodResources List says: "<pod>/<container>" -> device IDs
// (nil while the container holds none).
func listed(t *testing.T, ctx context.Context, c podresourcesapi.PodResourcesListerClient) map[string][]string {
	t.Helper()
	// A call sent just as the kubelet restarts can meet the old server's
	// closing connection (Unavailable) before the client has noticed it:
	// callers retry, as the device plugin's resolver does.
	var resp *podresourcesapi.ListPodResourcesResponse
	var err error
	for try := 0; try < 50; try++ {
		resp, err = c.List(ctx, &podresourcesapi.ListPodResourcesRequest{}, grpc.WaitForReady(true))
		if status.Code(err) != codes.Unavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, p := range resp.GetPodResources() {
		for _, c := range p.GetContainers() {
			var ids []string
			for _, d := range c.GetDevices() {
				if d.GetResourceName() == testResource {
					ids = append(ids, d.GetDeviceIds()...)
				}
			}
			out[p.GetName()+"/"+c.GetName()] = ids
		}
	}
	return out
}

// TestPodResourcesFollowsAdmission: the PodResources API lists a pod from
// the start of its admission, names a container's devices only once its
// Allocate returned (never an allocation in flight), lists no ordinary init
// container, answers Get for known pods only, survives a restart with its
// records, and forgets a released pod.
func TestPodResourcesFollowsAdmission(t *testing.T) {
	k, ctx := startKubelet(t)
	socket := filepath.Join(k.Dir(), "pr.sock")
	if err := k.ServePodResources(socket); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := podresourcesapi.NewPodResourcesListerClient(conn)
	if err := servePlugin(t, k, &recordingPlugin{devices: devices(4)}, "p.sock", testResource); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitForDevices(ctx, func(d []*pluginapi.Device) bool { return len(d) == 4 }); err != nil {
		t.Fatal(err)
	}
	p := pod("a", 1, 1)
	p.Spec.InitContainers = []corev1.Container{{Name: "init", Resources: p.Spec.Containers[0].Resources}}
	var inFlight []map[string][]string
	k.OnAllocated(func(_ *corev1.Pod, container string, _ []string) {
		inFlight = append(inFlight, listed(t, ctx, client))
	})
	allocs, err := k.AdmitPod(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	// During the Allocates of init, c0 and c1: the pod is listed, and only
	// the containers whose Allocate returned before hold devices.
	want := []map[string][]string{
		{"a/c0": nil, "a/c1": nil},
		{"a/c0": nil, "a/c1": nil},
		{"a/c0": allocs[1].Devices, "a/c1": nil},
	}
	if len(inFlight) != len(want) {
		t.Fatalf("%d Allocates seen, want %d", len(inFlight), len(want))
	}
	for i := range want {
		if !sameListing(inFlight[i], want[i]) {
			t.Errorf("during Allocate %d PodResources said %v, want %v", i, inFlight[i], want[i])
		}
	}
	done := map[string][]string{"a/c0": allocs[1].Devices, "a/c1": allocs[2].Devices}
	if got := listed(t, ctx, client); !sameListing(got, done) {
		t.Errorf("after admission PodResources said %v, want %v", got, done)
	}
	if _, err := client.Get(ctx, &podresourcesapi.GetPodResourcesRequest{PodName: "a", PodNamespace: "default"}); err != nil {
		t.Errorf("Get of an admitted pod: %v", err)
	}
	if _, err := client.Get(ctx, &podresourcesapi.GetPodResourcesRequest{PodName: "x", PodNamespace: "default"}); status.Code(err) != codes.NotFound {
		t.Errorf("Get of an unknown pod: %v, want NotFound", err)
	}
	// A restarted kubelet keeps its records and serves them again.
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, ctx, client); !sameListing(got, done) {
		t.Errorf("after a restart PodResources said %v, want %v", got, done)
	}
	k.ReleasePod(p)
	if got := listed(t, ctx, client); len(got) != 0 {
		t.Errorf("after the pod ended PodResources said %v, want nothing", got)
	}
}

func sameListing(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// TestAdmissionOrderIsTheKubelets: batch by batch, each stable-sorted by
// creation time; so a younger pod of an earlier batch is admitted before
// an older pod of a later one.
func TestAdmissionOrderIsTheKubelets(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(name string, s int) *corev1.Pod {
		p := pod(name)
		p.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(s) * time.Second))
		return p
	}
	order := AdmissionOrder([][]*corev1.Pod{
		{at("young", 5), at("tie-1", 1), at("tie-2", 1)},
		{at("old", 0)},
	})
	var got []string
	for _, p := range order {
		got = append(got, p.Name)
	}
	if want := []string{"tie-1", "tie-2", "young", "old"}; !slices.Equal(got, want) {
		t.Errorf("admission order %v, want %v", got, want)
	}
}
