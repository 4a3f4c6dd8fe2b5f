package deviceplugin

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/fakekubelet"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestRegistersAndAdvertisesOneDevicePerSlot(t *testing.T) {
	h := newHarness(t, newFakeGPUs(8, 10))
	h.startPlugin(1)

	if got := h.kubelet.Registrations(); got != 1 {
		t.Errorf("registrations = %d, want 1", got)
	}
	// PreStartContainer holds each container until its limits are
	// written; the preference keeps the kubelet on the assigned slots.
	if opts := h.kubelet.Options(); !opts.GetGetPreferredAllocationAvailable() || !opts.GetPreStartRequired() {
		t.Errorf("options = %v, want GetPreferredAllocationAvailable and PreStartRequired", opts)
	}
	if _, err := os.Stat(filepath.Join(h.opts.DevicePluginDir, SocketName)); err != nil {
		t.Errorf("plugin socket: %v", err)
	}
	devs := h.kubelet.Devices()
	if len(devs) != 80 {
		t.Fatalf("got %d devices, want 80", len(devs))
	}
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.GetID())
		uuid, _, err := vgpu.ParseSlotID(d.GetID())
		if err != nil {
			t.Fatalf("device ID %q: %v", d.GetID(), err)
		}
		g, _ := findGPU(h.gpus.GPUs(), uuid)
		if d.GetHealth() != pluginapi.Healthy {
			t.Errorf("device %s health %s, want Healthy", d.GetID(), d.GetHealth())
		}
		if n := d.GetTopology().GetNodes(); len(n) != 1 || n[0].GetID() != int64(g.NUMANode) {
			t.Errorf("device %s topology %v, want NUMA node %d", d.GetID(), n, g.NUMANode)
		}
	}
	for i := range 8 {
		for n := range 10 {
			if !slices.Contains(ids, vgpu.SlotID(gpuUUID(i), n)) {
				t.Errorf("slot %s not advertised", vgpu.SlotID(gpuUUID(i), n))
			}
		}
	}
	preload, err := os.ReadFile(filepath.Join(h.opts.StateDir, "ld.so.preload"))
	if err != nil || string(preload) != ContainerHookLibrary+"\n" {
		t.Errorf("ld.so.preload = %q, %v; want the in-container hook path", preload, err)
	}
}

func TestRegistersAgainAfterKubeletRestart(t *testing.T) {
	h := newHarness(t, newFakeGPUs(2, 2))
	h.startPlugin(1)
	for restart := 1; restart <= 2; restart++ {
		if err := h.kubelet.Restart(h.ctx); err != nil {
			t.Fatal(err)
		}
		h.waitDevices(1+restart, func(d []*pluginapi.Device) bool { return len(d) == 4 })
	}
	// The restarted kubelet removed the plugin's socket: the plugin must
	// be serving a new one, which a call proves.
	pod := podSpec("p", time.Now(), testNode, true, testContainer{name: "c", slots: []string{vgpu.SlotID(gpuUUID(0), 1)}})
	h.createPod(pod)
	resp, err := h.kubelet.Allocate(h.ctx, []string{vgpu.SlotID(gpuUUID(0), 1)})
	if err != nil {
		t.Fatalf("Allocate after kubelet restarts: %v", err)
	}
	if got := envGPUs(resp); !slices.Equal(got, []string{gpuUUID(0)}) {
		t.Errorf("NVIDIA_VISIBLE_DEVICES = %v, want %s", got, gpuUUID(0))
	}
}

func TestRegistersAgainWhenOnlyKubeletSocketIsRecreated(t *testing.T) {
	tests := []struct {
		name    string
		poll    time.Duration
		noWatch bool
	}{
		{"filesystem event", time.Hour, false},
		{"poll alone", 50 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newFakeGPUs(1, 2))
			h.startPlugin(1)
			h.stop()
			p, err := New(h.opts, h.gpus, h.client, h.recorder)
			if err != nil {
				t.Fatal(err)
			}
			p.tune.pollInterval, p.tune.noWatch = tc.poll, tc.noWatch
			ctx, cancel := context.WithCancel(h.ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			defer stopRun(t, cancel, done)
			h.waitDevices(2, func(d []*pluginapi.Device) bool { return len(d) == 2 })

			// A new kubelet process: only kubelet.sock is replaced.
			h.kubelet.Stop()
			kubelet, err := fakekubelet.Start(h.opts.DevicePluginDir, testResource)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kubelet.Stop)
			h.kubelet = kubelet
			h.waitDevices(1, func(d []*pluginapi.Device) bool { return len(d) == 2 })
		})
	}
}

func TestRegisteredFollowsTheKubeletSocket(t *testing.T) {
	tests := []struct {
		name string
		// poll is the plugin's poll interval; the filesystem watch is off,
		// so with an hour nothing can re-register within the test.
		poll time.Duration
		// wantReregistered: the new kubelet is registered with in the end.
		wantReregistered bool
	}{
		{name: "no reconcile: not registered with the new kubelet", poll: time.Hour},
		{name: "the poll registers again", poll: 20 * time.Millisecond, wantReregistered: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, newFakeGPUs(1, 2))
			p, err := New(h.opts, h.gpus, h.client, h.recorder)
			if err != nil {
				t.Fatal(err)
			}
			p.tune.pollInterval, p.tune.noWatch = tc.poll, true
			if p.Registered() {
				t.Fatal("Registered before Run")
			}
			ctx, cancel := context.WithCancel(h.ctx)
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			h.waitDevices(1, func(d []*pluginapi.Device) bool { return len(d) == 2 })
			eventually(t, "Registered after the first registration", p.Registered)

			// A new kubelet process: only kubelet.sock is replaced.
			h.kubelet.Stop()
			if p.Registered() {
				t.Error("Registered while there is no kubelet socket")
			}
			kubelet, err := fakekubelet.Start(h.opts.DevicePluginDir, testResource)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(kubelet.Stop)
			h.kubelet = kubelet
			if !tc.wantReregistered {
				if p.Registered() || kubelet.Registrations() != 0 {
					t.Errorf("Registered = %v with %d registrations at the new kubelet, want false and 0", p.Registered(), kubelet.Registrations())
				}
			} else {
				eventually(t, "Registered with the new kubelet", p.Registered)
				if kubelet.Registrations() < 1 {
					t.Error("Registered, but the new kubelet saw no registration")
				}
			}
			stopRun(t, cancel, done)
			if p.Registered() {
				t.Error("Registered after Run returned")
			}
		})
	}
}

func TestRegistersWhenKubeletAppearsLater(t *testing.T) {
	h := newHarness(t, newFakeGPUs(1, 3))
	h.kubelet.Stop() // No kubelet.sock when the plugin starts.
	p, err := New(h.opts, h.gpus, h.client, h.recorder)
	if err != nil {
		t.Fatal(err)
	}
	p.tune.pollInterval = time.Hour // Only the filesystem watch can notice.
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(h.ctx)
	go func() { done <- p.Run(ctx) }()
	eventually(t, "plugin socket", func() bool {
		_, err := os.Stat(filepath.Join(h.opts.DevicePluginDir, SocketName))
		return err == nil
	})
	if err := h.kubelet.Restart(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.waitDevices(1, func(d []*pluginapi.Device) bool { return len(d) == 3 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.opts.DevicePluginDir, SocketName)); !os.IsNotExist(err) {
		t.Errorf("plugin socket still exists after stop (stat: %v)", err)
	}
}

func TestListAndWatchFollowsHealth(t *testing.T) {
	h := newHarness(t, newFakeGPUs(4, 3))
	h.startPlugin(1)
	sick := gpuUUID(2)
	healthOf := func(devs []*pluginapi.Device, wantSick string) bool {
		for _, d := range devs {
			uuid, _, _ := vgpu.ParseSlotID(d.GetID())
			want := pluginapi.Healthy
			if uuid == wantSick {
				want = pluginapi.Unhealthy
			}
			if d.GetHealth() != want {
				return false
			}
		}
		return len(devs) == 12
	}
	h.gpus.setHealthy(sick, false)
	h.waitDevices(1, func(d []*pluginapi.Device) bool { return healthOf(d, sick) })
	h.gpus.setHealthy(sick, true)
	h.waitDevices(1, func(d []*pluginapi.Device) bool { return healthOf(d, "") })
}

func TestNewRejectsBadOptions(t *testing.T) {
	h := newHarness(t, newFakeGPUs(1, 1))
	tests := []struct {
		name   string
		modify func(*Options)
	}{
		{"resource without domain", func(o *Options) { o.ResourceName = "vgpu" }},
		{"no node", func(o *Options) { o.NodeName = "" }},
		{"relative plugin dir", func(o *Options) { o.DevicePluginDir = "plugins" }},
		{"relative state dir", func(o *Options) { o.StateDir = "state" }},
		{"no hook library", func(o *Options) { o.HookLibrary = "" }},
		{"no keys", func(o *Options) { o.Keys.Allocated = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := h.opts
			tc.modify(&opts)
			if _, err := New(opts, h.gpus, h.client, h.recorder); err == nil {
				t.Error("New accepted bad options")
			}
		})
	}
	if _, err := New(h.opts, nil, h.client, h.recorder); err == nil {
		t.Error("New accepted a nil device source")
	}
}
