// Package fakekubelet is a kubelet stand-in for testing device plugins
// without a node: it serves the Registration service on kubelet.sock in a
// directory of the caller's choosing, connects to a plugin that registers,
// follows its ListAndWatch stream, and admits pods the way the kubelet's
// device manager does (GetPreferredAllocation only when more slots are free
// than a container needs, then Allocate), tracking which devices are in use.
package fakekubelet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// SocketName is the kubelet's registration socket.
const SocketName = "kubelet.sock"

// Kubelet is a fake kubelet for one extended resource.
type Kubelet struct {
	dir          string
	resourceName string

	mu sync.Mutex
	// server serves kubelet.sock; nil while stopped.
	server *grpc.Server
	// plugin is the connection to the last registered plugin.
	plugin *pluginConn
	// registrations counts accepted Register calls.
	registrations int
	options       *pluginapi.DevicePluginOptions
	// devices is the last list the plugin sent (nil before the first).
	devices []*pluginapi.Device
	// inUse maps each allocated device ID to its owner ("<pod UID>/<container>").
	inUse map[string]string
	// known are the pods of the pod manager, which PodResources lists;
	// nextSeq numbers them in the order they were added.
	known   map[types.UID]*knownPod
	nextSeq uint64
	// podResourcesPath is where PodResources is served ("" when not);
	// podResourcesServer serves it, nil while stopped.
	podResourcesPath   string
	podResourcesServer *grpc.Server
	podResourcesCalls  int
	// afterAllocate is the OnAllocated hook.
	afterAllocate func(pod *corev1.Pod, container string, devices []string)
	// admitting serialises admissions: the kubelet admits one pod at a
	// time, in its sync loop.
	admitting sync.Mutex
	// changed is closed and replaced on every change of the above.
	changed chan struct{}
	// wg tracks the goroutines of servers and plugin streams.
	wg sync.WaitGroup
}

// pluginConn is the connection to one registered plugin.
type pluginConn struct {
	conn   *grpc.ClientConn
	client pluginapi.DevicePluginClient
	cancel context.CancelFunc
}

// Start serves kubelet.sock in dir (which must exist) for resourceName.
func Start(dir, resourceName string) (*Kubelet, error) {
	k := &Kubelet{dir: dir, resourceName: resourceName, inUse: map[string]string{}, known: map[types.UID]*knownPod{},
		changed: make(chan struct{})}
	if err := k.serve(); err != nil {
		return nil, err
	}
	return k, nil
}

// SocketPath is the path of kubelet.sock.
func (k *Kubelet) SocketPath() string { return filepath.Join(k.dir, SocketName) }

// Dir is the device-plugin directory.
func (k *Kubelet) Dir() string { return k.dir }

func (k *Kubelet) serve() error {
	if err := os.Remove(k.SocketPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove old kubelet socket: %w", err)
	}
	lis, err := net.Listen("unix", k.SocketPath())
	if err != nil {
		return fmt.Errorf("listen on kubelet socket %s: %w", k.SocketPath(), err)
	}
	srv := grpc.NewServer()
	pluginapi.RegisterRegistrationServer(srv, &registration{kubelet: k})
	k.mu.Lock()
	k.server = srv
	k.mu.Unlock()
	k.wg.Go(func() { _ = srv.Serve(lis) })
	return nil
}

// Stop stops serving and disconnects from the plugin.
func (k *Kubelet) Stop() {
	k.mu.Lock()
	srv, plugin, podRes := k.server, k.plugin, k.podResourcesServer
	k.server, k.plugin, k.podResourcesServer = nil, nil, nil
	k.notifyLocked()
	k.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
	if podRes != nil {
		podRes.Stop()
	}
	if plugin != nil {
		plugin.close()
	}
	k.wg.Wait()
	_ = os.Remove(k.SocketPath())
}

// Restart simulates a kubelet restart: it stops, removes every socket in
// the directory (the kubelet's device manager does so when it starts, which
// takes the plugin's socket too), forgets the device list and serves a new
// kubelet.sock (and PodResources, if it served it). Devices in use and the
// pods holding them are kept, as the kubelet keeps them in its checkpoint
// and finds the running pods again.
func (k *Kubelet) Restart(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("restart fake kubelet: %w", err)
	}
	k.Stop()
	entries, err := os.ReadDir(k.dir)
	if err != nil {
		return fmt.Errorf("restart fake kubelet: list %s: %w", k.dir, err)
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSocket != 0 {
			if err := os.Remove(filepath.Join(k.dir, e.Name())); err != nil {
				return fmt.Errorf("restart fake kubelet: %w", err)
			}
		}
	}
	k.mu.Lock()
	k.devices, k.options = nil, nil
	k.notifyLocked()
	k.mu.Unlock()
	if err := k.serve(); err != nil {
		return err
	}
	return k.servePodResources()
}

func (k *Kubelet) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// registration is the kubelet's Registration service.
type registration struct {
	pluginapi.UnimplementedRegistrationServer
	kubelet *Kubelet
}

func (r *registration) Register(_ context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k := r.kubelet
	switch {
	case req.GetVersion() != pluginapi.Version:
		return nil, status.Errorf(codes.InvalidArgument, "version %q is not supported (want %q)", req.GetVersion(), pluginapi.Version)
	case req.GetResourceName() != k.resourceName:
		return nil, status.Errorf(codes.InvalidArgument, "resource %q is not %q", req.GetResourceName(), k.resourceName)
	case req.GetEndpoint() == "" || filepath.Base(req.GetEndpoint()) != req.GetEndpoint():
		return nil, status.Errorf(codes.InvalidArgument, "endpoint %q is not a file name in %s", req.GetEndpoint(), k.dir)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(k.dir, req.GetEndpoint()),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "connect to plugin endpoint %s: %v", req.GetEndpoint(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	plugin := &pluginConn{conn: conn, client: pluginapi.NewDevicePluginClient(conn), cancel: cancel}

	k.mu.Lock()
	if k.server == nil { // Stopped while this call was in flight.
		k.mu.Unlock()
		plugin.close()
		return nil, status.Error(codes.Unavailable, "the fake kubelet is stopping")
	}
	old := k.plugin
	k.plugin = plugin
	k.registrations++
	// Like the kubelet: the options come with the registration, so a
	// plugin registering again (after a kubelet restart, it may do so
	// twice) never leaves a window in which PreStartContainer is skipped;
	// and the resource keeps its devices until the new ListAndWatch
	// replaces them, so admissions in between still find them.
	k.options = req.GetOptions()
	k.notifyLocked()
	k.wg.Go(func() { k.follow(ctx, plugin) })
	k.mu.Unlock()
	if old != nil {
		old.close()
	}
	// Like the kubelet, answer at once and talk to the plugin afterwards.
	return &pluginapi.Empty{}, nil
}

func (c *pluginConn) close() {
	c.cancel()
	_ = c.conn.Close()
}

// follow reads the plugin's options and then its device stream until the
// stream ends or the plugin is replaced.
func (k *Kubelet) follow(ctx context.Context, plugin *pluginConn) {
	opts, err := plugin.client.GetDevicePluginOptions(ctx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		return
	}
	stream, err := plugin.client.ListAndWatch(ctx, &pluginapi.Empty{}, grpc.WaitForReady(true))
	if err != nil {
		return
	}
	k.mu.Lock()
	if k.plugin == plugin {
		k.options = opts
		k.notifyLocked()
	}
	k.mu.Unlock()
	for {
		resp, err := stream.Recv()
		if err != nil {
			return
		}
		k.mu.Lock()
		if k.plugin != plugin {
			k.mu.Unlock()
			return
		}
		k.devices = resp.GetDevices()
		k.notifyLocked()
		k.mu.Unlock()
	}
}

// Registrations is how many Register calls were accepted.
func (k *Kubelet) Registrations() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.registrations
}

// Options are the plugin's options (nil until read after registration).
func (k *Kubelet) Options() *pluginapi.DevicePluginOptions {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.options
}

// Devices is the last device list the plugin sent.
func (k *Kubelet) Devices() []*pluginapi.Device {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.devices)
}

// WaitFor blocks until cond holds for the kubelet's state or ctx is done.
// cond is called with the kubelet's lock held and must not call back.
func (k *Kubelet) WaitFor(ctx context.Context, cond func(State) bool) error {
	for {
		k.mu.Lock()
		ok := cond(State{Registrations: k.registrations, Options: k.options, Devices: k.devices})
		changed := k.changed
		k.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for the fake kubelet's state: %w", ctx.Err())
		}
	}
}

// State is what WaitFor conditions see.
type State struct {
	Registrations int
	Options       *pluginapi.DevicePluginOptions
	// Devices is the last device list the current plugin sent; nil before
	// the first. Read only.
	Devices []*pluginapi.Device
}

// WaitForDevices blocks until the current plugin's device list satisfies
// cond (a list has been received first).
func (k *Kubelet) WaitForDevices(ctx context.Context, cond func([]*pluginapi.Device) bool) error {
	return k.WaitFor(ctx, func(s State) bool { return s.Devices != nil && cond(s.Devices) })
}

// client is the current plugin's client.
func (k *Kubelet) client() (pluginapi.DevicePluginClient, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.plugin == nil {
		return nil, errors.New("no device plugin is registered")
	}
	return k.plugin.client, nil
}
