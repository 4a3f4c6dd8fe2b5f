package deviceplugin

import (
	"fmt"
	"path"
	"strings"

	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/hookenv"
)

// Paths inside the container.
const (
	// ContainerHookLibrary is where the interception library is mounted.
	ContainerHookLibrary = "/usr/local/tessera/lib/libtessera-hook.so"
	// ContainerPreloadFile is the dynamic loader's preload list.
	ContainerPreloadFile = "/etc/ld.so.preload"
	// ContainerRegionDir holds the container's usage region.
	ContainerRegionDir = "/var/run/tessera"
	// VisibleDevicesEnv tells the NVIDIA container runtime which GPUs to
	// expose.
	VisibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES"
)

// containerRegionFile is the usage region as the container sees it.
var containerRegionFile = path.Join(ContainerRegionDir, regionFileName)

// containerResponse is what the kubelet hands the container runtime: the
// assigned GPUs in assignment order (CUDA ordinals), the hook's limits,
// the hook library preloaded, and the container's own region directory.
func (p *Plugin) containerResponse(c claim) (*pluginapi.ContainerAllocateResponse, error) {
	limits := make([]hookenv.DeviceLimit, len(c.container.devices))
	uuids := make([]string, len(c.container.devices))
	for i, d := range c.container.devices {
		limits[i] = hookenv.DeviceLimit{UUID: d.UUID, MemoryMiB: d.MemoryMiB, CorePercent: d.Cores}
		uuids[i] = d.UUID
	}
	env, err := hookenv.Env(limits, containerRegionFile)
	if err != nil {
		return nil, fmt.Errorf("render hook environment: %w", err)
	}
	env[VisibleDevicesEnv] = strings.Join(uuids, ",")
	regionDir, err := p.regions.ensureContainer(string(c.pod.UID), c.container.name)
	if err != nil {
		return nil, err
	}
	return &pluginapi.ContainerAllocateResponse{
		Envs: env,
		Mounts: []*pluginapi.Mount{
			{ContainerPath: ContainerHookLibrary, HostPath: p.opts.HookLibrary, ReadOnly: true},
			{ContainerPath: ContainerPreloadFile, HostPath: p.regions.preloadPath(), ReadOnly: true},
			{ContainerPath: ContainerRegionDir, HostPath: regionDir, ReadOnly: false},
		},
	}, nil
}
