package deviceplugin

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// service is the DevicePlugin gRPC service of one server life.
type service struct {
	pluginapi.UnimplementedDevicePluginServer
	plugin *Plugin
	// stop is closed when the server that owns this service stops.
	stop <-chan struct{}
}

func (s *service) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return pluginOptions(), nil
}

// PreStartContainer holds a container's start until its limits are
// delivered (the options ask the kubelet to call it).
func (s *service) PreStartContainer(ctx context.Context, req *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return s.plugin.preStart(ctx, req)
}

func (s *service) GetPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return s.plugin.getPreferredAllocation(ctx, req)
}

func (s *service) Allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	return s.plugin.allocate(ctx, req)
}

// ListAndWatch sends the device list now and again on every health change,
// until the kubelet goes away or this server stops.
func (s *service) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	p := s.plugin
	// Subscribe before the first send, so that no change between the two
	// is lost.
	changes, unsubscribe := p.devices.Subscribe()
	defer unsubscribe()
	send := func() error {
		devs := deviceList(p.devices.GPUs())
		if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: devs}); err != nil {
			p.logger.Error(err, "Sending the device list to the kubelet")
			return err
		}
		p.logger.V(4).Info("Sent the device list to the kubelet", "devices", len(devs))
		return nil
	}
	if err := send(); err != nil {
		return err
	}
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-s.stop:
			return nil
		case _, ok := <-changes:
			if !ok {
				return status.Error(codes.Unavailable, "the GPU health source stopped")
			}
			if err := send(); err != nil {
				return err
			}
		}
	}
}

// deviceList is one kubelet device per slot of every GPU, with the GPU's
// health and NUMA node.
func deviceList(gpus []vgpu.GPU) []*pluginapi.Device {
	n := 0
	for _, g := range gpus {
		n += max(g.Slots, 0)
	}
	devs := make([]*pluginapi.Device, 0, n)
	for _, g := range gpus {
		health := pluginapi.Unhealthy
		if g.Healthy {
			health = pluginapi.Healthy
		}
		var topology *pluginapi.TopologyInfo
		if g.NUMANode >= 0 { // NVML reports -1 where the NUMA node is unknown.
			topology = &pluginapi.TopologyInfo{Nodes: []*pluginapi.NUMANode{{ID: int64(g.NUMANode)}}}
		}
		for slot := range max(g.Slots, 0) {
			devs = append(devs, &pluginapi.Device{ID: vgpu.SlotID(g.UUID, slot), Health: health, Topology: topology})
		}
	}
	return devs
}

// findGPU returns the GPU with the given UUID from a snapshot.
func findGPU(gpus []vgpu.GPU, uuid string) (vgpu.GPU, bool) {
	for _, g := range gpus {
		if g.UUID == uuid {
			return g, true
		}
	}
	return vgpu.GPU{}, false
}
