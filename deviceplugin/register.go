package deviceplugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// registerTimeout bounds one Register call; the kubelet answers at once.
const registerTimeout = 10 * time.Second

// register tells the kubelet about the plugin's socket and resource.
func (p *Plugin) register(ctx context.Context) error {
	conn, err := grpc.NewClient("unix://"+p.kubeletSocketPath(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("connect to kubelet at %s: %w", p.kubeletSocketPath(), err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, registerTimeout)
	defer cancel()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     SocketName,
		ResourceName: p.opts.ResourceName,
		Options:      pluginOptions(),
	})
	if err != nil {
		return fmt.Errorf("register resource %s with kubelet at %s: %w", p.opts.ResourceName, p.kubeletSocketPath(), err)
	}
	return nil
}

// registration identifies one successful Register: the kubelet socket it
// went through and the plugin socket it announced.
type registration struct {
	kubelet, plugin os.FileInfo
}

// Registered reports whether the plugin is registered with the kubelet that
// now serves kubelet.sock: true after a successful Register, false once
// kubelet.sock or the plugin's own socket is removed or replaced (a kubelet
// restart does both) until the plugin has registered again, and false when
// the plugin is not running. It only stats two files, so a liveness probe
// may call it as often as it likes; it never asks the API server.
func (p *Plugin) Registered() bool {
	r := p.registered.Load()
	if r == nil {
		return false
	}
	kubelet, err := os.Stat(p.kubeletSocketPath())
	if err != nil || !sameSocket(kubelet, r.kubelet) {
		return false
	}
	plugin, err := os.Stat(p.socketPath())
	return err == nil && sameSocket(plugin, r.plugin)
}

func pluginOptions() *pluginapi.DevicePluginOptions {
	return &pluginapi.DevicePluginOptions{GetPreferredAllocationAvailable: true, PreStartRequired: true}
}

// watchPluginDir signals whenever the kubelet socket or the plugin's own
// socket is created or removed. Without inotify (a watch limit reached, an
// unusual filesystem) its channel never fires, and the poll in
// serveAndRegister still notices a restarted kubelet, only later.
func (p *Plugin) watchPluginDir(ctx context.Context) (<-chan struct{}, func()) {
	events := make(chan struct{}, 1)
	if p.tune.noWatch {
		return events, func() {}
	}
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		p.logger.Error(err, "Cannot watch the device-plugin directory; relying on polling", "dir", p.opts.DevicePluginDir)
		return events, func() {}
	}
	if err := watcher.Add(p.opts.DevicePluginDir); err != nil {
		_ = watcher.Close()
		p.logger.Error(err, "Cannot watch the device-plugin directory; relying on polling", "dir", p.opts.DevicePluginDir)
		return events, func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-watcher.Events:
				if !ok {
					return
				}
				name := filepath.Base(ev.Name)
				if name != KubeletSocketName && name != SocketName {
					continue
				}
				if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Remove) && !ev.Has(fsnotify.Rename) {
					continue
				}
				select { // Coalesce: one pending signal is enough.
				case events <- struct{}{}:
				default:
				}
			case err, ok := <-watcher.Errors:
				if !ok {
					return
				}
				p.logger.Error(err, "Watching the device-plugin directory", "dir", p.opts.DevicePluginDir)
			}
		}
	}()
	return events, func() {
		_ = watcher.Close()
		<-done
	}
}
