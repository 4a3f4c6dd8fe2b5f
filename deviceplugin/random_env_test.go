package deviceplugin

import (
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// The parts of the randomized test that depend on how a plugin delivers
// limits: this file is replaced by one that reads the environment to run
// the same test against the age-based matching it replaced.

// randomOptions are a node's plugin options.
func randomOptions(node, pluginDir, stateDir, podResources string) Options {
	return Options{
		ResourceName: testResource, NodeName: node, DevicePluginDir: pluginDir, StateDir: stateDir,
		HookLibrary: "/opt/tessera/libtessera-hook.so", Keys: annotations.DefaultKeys(), PodResourcesSocket: podResources,
	}
}

// newRandomPlugin builds a node's plugin with test intervals.
func newRandomPlugin(opts Options, gpus *fakeGPUs, client *fake.Clientset, recorder record.EventRecorder) (*Plugin, error) {
	p, err := New(opts, gpus, client, recorder)
	if err != nil {
		return nil, err
	}
	p.tune.matchWait = time.Second
	p.tune.pollInterval = 200 * time.Millisecond
	p.tune.registerBackoffMax = 200 * time.Millisecond
	p.tune.stopTimeout = 2 * time.Second
	p.tune.resolveResync = 500 * time.Millisecond
	return p, nil
}

// observedLimits reads a container's limits from its limits file, which
// PreStartContainer made sure is there before the container started.
func observedLimits(resp *pluginapi.ContainerAllocateResponse) ([]observedDevice, error) {
	l, ok, err := ContainerLimits(resp)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, fmt.Errorf("no limits when the container started")
	case l.Refused != "":
		return nil, fmt.Errorf("refused: %s", l.Refused)
	}
	var out []observedDevice
	for _, d := range l.Devices {
		out = append(out, observedDevice{uuid: d.UUID, memoryMiB: d.MemoryMiB, cores: d.CorePercent})
	}
	return out, nil
}
