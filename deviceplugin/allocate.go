package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// eventReason is the reason of the Warning event put on a pod whose
// kubelet call the plugin refused.
const eventReason = "TesseraGPUAllocationFailed"

// maxEventMessage keeps event messages within what the API accepts.
const maxEventMessage = 1024

// allocate serves the kubelet's Allocate. It decides only what the slot
// IDs decide: the GPUs the container sees (a slot ID names its GPU) and a
// fresh allocation directory keyed by the slots, whose limits the resolver
// writes once the kubelet's PodResources API names the container. So no
// pod is matched here, and no order of admission can give a container
// another pod's limits.
func (p *Plugin) allocate(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	if len(req.GetContainerRequests()) == 0 {
		return nil, p.reject("Allocate", codes.InvalidArgument,
			fmt.Sprintf("allocate on node %s: the request has no container requests", p.opts.NodeName), nil)
	}
	gpus := p.devices.GPUs()
	reqs := make([]slotRequest, len(req.GetContainerRequests()))
	for i, cr := range req.GetContainerRequests() {
		r, err := decodeSlotRequest(cr.GetDevicesIds(), gpus)
		if err != nil {
			code := codes.InvalidArgument
			if re := (*requestError)(nil); errors.As(err, &re) {
				code = re.code
			}
			return nil, p.reject("Allocate", code,
				fmt.Sprintf("allocate on node %s: container request %d: %v", p.opts.NodeName, i, err), nil)
		}
		if bad := r.unhealthyGPUs(gpus); len(bad) > 0 {
			msg := fmt.Sprintf("allocate on node %s: slots %s are on unhealthy GPUs %s",
				p.opts.NodeName, quoteList(r.slots), strings.Join(bad, ","))
			pod, container, ok := p.index.find(r)
			if ok {
				msg += fmt.Sprintf("; they are assigned to container %q of pod %s/%s", container, pod.Namespace, pod.Name)
			}
			return nil, p.reject("Allocate", codes.FailedPrecondition, msg, pod)
		}
		reqs[i] = r
	}
	resp := &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, len(reqs))}
	for i, r := range reqs {
		a, err := p.prepareAllocation(r)
		if err == nil {
			resp.ContainerResponses[i], err = p.containerResponse(a)
		}
		if err != nil {
			return nil, p.reject("Allocate", codes.Internal, fmt.Sprintf("allocate slots %s on node %s: %v",
				quoteList(r.slots), p.opts.NodeName, err), nil)
		}
		klog.FromContext(ctx).V(2).Info("Allocated slots; limits follow once the kubelet names the container",
			"slots", r.slots, "allocation", a.key, "id", a.id)
	}
	p.allocs.poke()
	return resp, nil
}

// prepareAllocation starts the allocation of r's slots afresh: a new ID,
// the directory emptied of whatever an earlier allocation of the same
// slots left, and the table's entry replaced, all under the key's lock, so
// that a resolution of the earlier allocation cannot land after it.
func (p *Plugin) prepareAllocation(r slotRequest) (*allocation, error) {
	id, err := newAllocationID()
	if err != nil {
		return nil, err
	}
	a := &allocation{key: allocationKey(r.slots), id: id, slots: r.slots, gpus: r.gpus, created: time.Now()}
	unlock := p.keyLocks.lock(types.UID(a.key))
	defer unlock()
	if err := p.store.prepare(a.key, allocRecord{ID: a.id, Slots: a.slots, GPUs: a.gpus, Created: a.created}); err != nil {
		return nil, err
	}
	p.allocs.put(a)
	return a, nil
}

// preStart serves PreStartContainer: the kubelet calls it before it starts
// a container, after it recorded the allocation, so the container never
// starts before its limits are in place, and never at all when it was
// refused its GPUs (the library would fail its CUDA calls anyway; this way
// the pod's events and status say so).
func (p *Plugin) preStart(ctx context.Context, req *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	owner, err := p.waitResolved(ctx, req.GetDevicesIds())
	if err != nil {
		return nil, p.reject("PreStartContainer", codes.Unavailable, fmt.Sprintf("start container on node %s: %v", p.opts.NodeName, err), nil)
	}
	if owner.Refused != "" {
		return nil, status.Error(codes.FailedPrecondition, owner.Refused)
	}
	return &pluginapi.PreStartContainerResponse{}, nil
}

// reject logs a refused kubelet call, puts a Warning event on the pod it
// concerns (when one is known) and returns the gRPC status error.
func (p *Plugin) reject(call string, code codes.Code, msg string, pod *corev1.Pod) error {
	if pod != nil {
		p.logger.Error(nil, "Refused a kubelet call", "call", call, "code", code, "pod", klog.KObj(pod), "reason", msg)
		p.recorder.Event(pod, corev1.EventTypeWarning, eventReason, clipEvent(msg))
	} else {
		p.logger.Error(nil, "Refused a kubelet call", "call", call, "code", code, "reason", msg)
	}
	return status.Error(code, msg)
}
