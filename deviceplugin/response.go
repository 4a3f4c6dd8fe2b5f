package deviceplugin

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
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
	// ContainerLimitsDir holds the container's limits file, mounted
	// read-only: a directory, not the file, so that the file written (and
	// replaced by a rename) after the container started is visible in it.
	ContainerLimitsDir = "/var/run/tessera-limits"
	// VisibleDevicesEnv tells the NVIDIA container runtime which GPUs to
	// expose.
	VisibleDevicesEnv = "NVIDIA_VISIBLE_DEVICES"
)

// Files as the container sees them.
var (
	containerRegionFile = path.Join(ContainerRegionDir, regionFileName)
	containerLimitsFile = path.Join(ContainerLimitsDir, limitsFileName)
)

// containerResponse is what the kubelet hands the container runtime: the
// allocation's GPUs (ordinals in the order of a.gpus), where the library
// finds its limits and how long it waits for them, the library preloaded,
// and the allocation's region and limits directories.
func (p *Plugin) containerResponse(a *allocation) (*pluginapi.ContainerAllocateResponse, error) {
	wait := p.opts.LimitsWait
	if wait == 0 {
		wait = DefaultLimitsWait
	}
	env, err := hookenv.AllocationEnv(a.gpus, a.id, containerRegionFile, containerLimitsFile, wait)
	if err != nil {
		return nil, fmt.Errorf("render hook environment: %w", err)
	}
	env[VisibleDevicesEnv] = strings.Join(a.gpus, ",")
	return &pluginapi.ContainerAllocateResponse{
		Envs: env,
		Mounts: []*pluginapi.Mount{
			{ContainerPath: ContainerHookLibrary, HostPath: p.opts.HookLibrary, ReadOnly: true},
			{ContainerPath: ContainerPreloadFile, HostPath: p.regions.preloadPath(), ReadOnly: true},
			{ContainerPath: ContainerRegionDir, HostPath: p.store.regionDir(a.key), ReadOnly: false},
			{ContainerPath: ContainerLimitsDir, HostPath: p.store.limitsDir(a.key), ReadOnly: true},
		},
	}, nil
}

// ContainerLimits reads a container's limits as the interception library
// would: the limits file in the host directory that resp mounts at
// ContainerLimitsDir, which must carry resp's allocation ID. It is for
// tests and tools that stand in for a container (the e2e environment,
// the demo); ok is false while the limits have not arrived.
func ContainerLimits(resp *pluginapi.ContainerAllocateResponse) (l hookenv.Limits, ok bool, err error) {
	var dir string
	for _, m := range resp.GetMounts() {
		if m.GetContainerPath() == ContainerLimitsDir {
			dir = m.GetHostPath()
		}
	}
	if dir == "" {
		return l, false, fmt.Errorf("the response mounts nothing at %s", ContainerLimitsDir)
	}
	data, err := os.ReadFile(filepath.Join(dir, limitsFileName))
	if os.IsNotExist(err) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("read limits: %w", err)
	}
	l, err = hookenv.DecodeLimits(data)
	if err != nil {
		return l, false, err
	}
	if want := resp.GetEnvs()[hookenv.AllocationID]; l.Allocation != want {
		return hookenv.Limits{}, false, nil // An earlier allocation's file: still waiting.
	}
	return l, true, nil
}
