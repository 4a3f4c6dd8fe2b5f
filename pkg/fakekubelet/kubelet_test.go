package fakekubelet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const testResource = "example.com/dev"

// recordingPlugin is a minimal device plugin that records the calls it
// gets and prefers the highest-numbered devices.
type recordingPlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device

	mu        sync.Mutex
	preferred [][]string // available lists of GetPreferredAllocation calls
	allocated [][]string
	failNext  bool
}

func (p *recordingPlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true}, nil
}

func (p *recordingPlugin) ListAndWatch(_ *pluginapi.Empty, s pluginapi.DevicePlugin_ListAndWatchServer) error {
	if err := s.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-s.Context().Done()
	return nil
}

func (p *recordingPlugin) GetPreferredAllocation(_ context.Context, r *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	c := r.GetContainerRequests()[0]
	p.mu.Lock()
	p.preferred = append(p.preferred, c.GetAvailableDeviceIDs())
	p.mu.Unlock()
	ids := slices.Clone(c.GetAvailableDeviceIDs())
	slices.Reverse(ids)
	return &pluginapi.PreferredAllocationResponse{ContainerResponses: []*pluginapi.ContainerPreferredAllocationResponse{
		{DeviceIDs: ids[:c.GetAllocationSize()]},
	}}, nil
}

func (p *recordingPlugin) Allocate(_ context.Context, r *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failNext {
		p.failNext = false
		return nil, errors.New("refused")
	}
	ids := r.GetContainerRequests()[0].GetDevicesIds()
	p.allocated = append(p.allocated, ids)
	return &pluginapi.AllocateResponse{ContainerResponses: []*pluginapi.ContainerAllocateResponse{
		{Envs: map[string]string{"DEVICES": fmt.Sprint(ids)}},
	}}, nil
}

// servePlugin serves p on dir/name and registers it with the kubelet.
func servePlugin(t *testing.T, k *Kubelet, p *recordingPlugin, name, resourceName string) error {
	t.Helper()
	lis, err := net.Listen("unix", filepath.Join(k.Dir(), name))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterDevicePluginServer(srv, p)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("unix://"+k.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_, err = pluginapi.NewRegistrationClient(conn).Register(context.Background(), &pluginapi.RegisterRequest{
		Version: pluginapi.Version, Endpoint: name, ResourceName: resourceName,
	})
	return err
}

func startKubelet(t *testing.T) (*Kubelet, context.Context) {
	t.Helper()
	dir, err := os.MkdirTemp("", "fk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	k, err := Start(dir, testResource)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return k, ctx
}

func devices(n int, unhealthy ...int) []*pluginapi.Device {
	var out []*pluginapi.Device
	for i := range n {
		h := pluginapi.Healthy
		if slices.Contains(unhealthy, i) {
			h = pluginapi.Unhealthy
		}
		out = append(out, &pluginapi.Device{ID: fmt.Sprintf("dev-%d", i), Health: h})
	}
	return out
}

func pod(uid string, perContainer ...int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: uid, Namespace: "default", UID: types.UID("uid-" + uid)}}
	for i, n := range perContainer {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: fmt.Sprintf("c%d", i),
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
				testResource: *resource.NewQuantity(int64(n), resource.DecimalSI)}},
		})
	}
	return p
}

func TestRegisterValidatesAndFollowsDevices(t *testing.T) {
	k, ctx := startKubelet(t)
	if err := servePlugin(t, k, &recordingPlugin{}, "wrong.sock", "other.com/x"); err == nil {
		t.Error("a registration for another resource was accepted")
	}
	if err := servePlugin(t, k, &recordingPlugin{devices: devices(3)}, "p.sock", testResource); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitForDevices(ctx, func(d []*pluginapi.Device) bool { return len(d) == 3 }); err != nil {
		t.Fatal(err)
	}
	if k.Registrations() != 1 || !k.Options().GetGetPreferredAllocationAvailable() {
		t.Errorf("registrations %d, options %v", k.Registrations(), k.Options())
	}
}

func TestAdmitPodAsksForAPreferenceOnlyWhenMoreAreFree(t *testing.T) {
	k, ctx := startKubelet(t)
	p := &recordingPlugin{devices: devices(5, 4)} // dev-4 is unhealthy.
	if err := servePlugin(t, k, p, "p.sock", testResource); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitForDevices(ctx, func(d []*pluginapi.Device) bool { return len(d) == 5 }); err != nil {
		t.Fatal(err)
	}
	// 4 healthy free, 2 asked: preference (the plugin prefers the highest).
	first, err := k.AdmitPod(ctx, pod("a", 2))
	if err != nil {
		t.Fatal(err)
	}
	if !first[0].Preferred || !slices.Equal(first[0].Devices, []string{"dev-3", "dev-2"}) {
		t.Errorf("first pod: %+v, want preferred dev-3, dev-2", first[0])
	}
	// 2 free, 2 asked: no preference, the free ones.
	second, err := k.AdmitPod(ctx, pod("b", 2))
	if err != nil {
		t.Fatal(err)
	}
	if second[0].Preferred || !slices.Equal(second[0].Devices, []string{"dev-0", "dev-1"}) {
		t.Errorf("second pod: %+v, want dev-0, dev-1 without preference", second[0])
	}
	p.mu.Lock()
	preferred := slices.Clone(p.preferred)
	p.mu.Unlock()
	if len(preferred) != 1 || len(preferred[0]) != 4 {
		t.Errorf("GetPreferredAllocation calls %v, want one with the 4 healthy free devices", preferred)
	}
	// Nothing is free now.
	if _, err := k.AdmitPod(ctx, pod("c", 1)); err == nil {
		t.Error("admitted a pod with no free device")
	}
	// A failed Allocate releases the pod's devices.
	k.ReleasePod(pod("a"))
	p.mu.Lock()
	p.failNext = true
	p.mu.Unlock()
	if _, err := k.AdmitPod(ctx, pod("d", 1, 1)); err == nil {
		t.Fatal("a refused Allocate admitted the pod")
	}
	if got := len(k.InUse()); got != 2 {
		t.Errorf("%d devices in use after a failed admission, want the second pod's 2", got)
	}
}

func TestRestartRemovesSocketsAndServesAgain(t *testing.T) {
	k, ctx := startKubelet(t)
	if err := servePlugin(t, k, &recordingPlugin{devices: devices(1)}, "p.sock", testResource); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitForDevices(ctx, func(d []*pluginapi.Device) bool { return len(d) == 1 }); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(k.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(k.SocketPath())
	if err != nil || (os.SameFile(before, after) && before.ModTime().Equal(after.ModTime())) {
		t.Fatalf("kubelet.sock was not recreated (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(k.Dir(), "p.sock")); !os.IsNotExist(err) {
		t.Errorf("the plugin's socket survived the restart: %v", err)
	}
	if k.Devices() != nil {
		t.Error("the device list survived the restart")
	}
	if _, err := k.Allocate(ctx, []string{"dev-0"}); err == nil {
		t.Error("Allocate reached a plugin that has not registered again")
	}
	if err := servePlugin(t, k, &recordingPlugin{devices: devices(2)}, "p2.sock", testResource); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitForDevices(ctx, func(d []*pluginapi.Device) bool { return len(d) == 2 }); err != nil {
		t.Fatal(err)
	}
}
