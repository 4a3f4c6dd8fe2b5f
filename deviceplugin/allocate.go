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
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// eventReason is the reason of the Warning event put on a pod whose
// kubelet call the plugin refused.
const eventReason = "TesseraGPUAllocationFailed"

// maxEventMessage keeps event messages within what the API accepts.
const maxEventMessage = 1024

// allocate serves the kubelet's Allocate: every container request is
// matched to an unserved container (all or none), marked served, and
// answered with that container's GPUs, limits and mounts.
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

	// Slots the plugin itself preferred match a container exactly; any
	// other call (the kubelet chose the slots) may be for a pod the
	// informer has not delivered yet.
	if !p.index.allExact(reqs) {
		p.refreshPods(ctx)
	}
	claims, failure := p.claimWaiting(ctx, reqs)
	if failure != nil {
		return nil, p.reject("Allocate", failure.code, "allocate: "+failure.msg, failure.pod)
	}
	resp := &pluginapi.AllocateResponse{ContainerResponses: make([]*pluginapi.ContainerAllocateResponse, len(claims))}
	for i, c := range claims {
		cr, err := p.containerResponse(c)
		if err != nil {
			for _, c := range claims {
				p.index.unserve(c.pod.UID, c.container.name)
			}
			return nil, p.reject("Allocate", codes.Internal, fmt.Sprintf("allocate container %q of pod %s/%s on node %s: %v",
				c.container.name, c.pod.Namespace, c.pod.Name, p.opts.NodeName, err), c.pod)
		}
		resp.ContainerResponses[i] = cr
	}
	p.recordAllocated(ctx, claims)
	for i, c := range claims {
		p.logger.Info("Allocated GPUs", "pod", klog.KObj(c.pod), "container", c.container.name,
			"requestedSlots", reqs[i].slots, "assignedSlots", c.container.slots)
	}
	return resp, nil
}

// claimWaiting claims containers for the requests, waiting up to matchWait
// for the pod informer when nothing matches yet.
func (p *Plugin) claimWaiting(ctx context.Context, reqs []slotRequest) ([]claim, *matchFailure) {
	deadline := time.NewTimer(p.tune.matchWait)
	defer deadline.Stop()
	for {
		changed := p.index.changes()
		claims, failure := p.index.claim(reqs)
		if failure == nil {
			return claims, nil
		}
		select {
		case <-changed:
		case <-deadline.C:
			return nil, failure
		case <-ctx.Done():
			return nil, failure
		}
	}
}

// reject logs a refused kubelet call, puts a Warning event on the pod it
// concerns (when one is known) and returns the gRPC status error.
func (p *Plugin) reject(call string, code codes.Code, msg string, pod *corev1.Pod) error {
	if pod != nil {
		p.logger.Error(nil, "Refused a kubelet call", "call", call, "code", code, "pod", klog.KObj(pod), "reason", msg)
		event := msg
		if len(event) > maxEventMessage {
			event = strings.ToValidUTF8(event[:maxEventMessage-3], "") + "..."
		}
		p.recorder.Event(pod, corev1.EventTypeWarning, eventReason, event)
	} else {
		p.logger.Error(nil, "Refused a kubelet call", "call", call, "code", code, "reason", msg)
	}
	return status.Error(code, msg)
}
