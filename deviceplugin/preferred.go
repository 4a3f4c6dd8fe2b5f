package deviceplugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// availability is the kubelet's set of free slots for one container.
type availability struct {
	set map[string]bool
	// byGPU lists each GPU's free slots by slot number.
	byGPU map[string][]string
	// sorted is every free slot ID, sorted.
	sorted []string
}

func newAvailability(r slotRequest) availability {
	a := availability{set: make(map[string]bool, len(r.slots)), byGPU: map[string][]string{}, sorted: r.slots}
	type slot struct {
		id string
		n  int
	}
	perGPU := map[string][]slot{}
	for _, id := range r.slots {
		uuid, n, _ := vgpu.ParseSlotID(id) // decodeSlotRequest checked it.
		a.set[id] = true
		perGPU[uuid] = append(perGPU[uuid], slot{id, n})
	}
	for uuid, slots := range perGPU {
		slices.SortFunc(slots, func(x, y slot) int { return cmp.Compare(x.n, y.n) })
		for _, s := range slots {
			a.byGPU[uuid] = append(a.byGPU[uuid], s.id)
		}
	}
	return a
}

// getPreferredAllocation answers, per container request, with the slots
// the extender assigned to the oldest waiting container that fits the call,
// so that the Allocate that follows matches that container exactly.
func (p *Plugin) getPreferredAllocation(ctx context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	if len(req.GetContainerRequests()) == 0 {
		return nil, p.reject("GetPreferredAllocation", codes.InvalidArgument,
			fmt.Sprintf("preferred allocation on node %s: the request has no container requests", p.opts.NodeName), nil)
	}
	gpus := p.devices.GPUs()
	resp := &pluginapi.PreferredAllocationResponse{}
	for i, cr := range req.GetContainerRequests() {
		ids, err := p.preferFor(ctx, cr, gpus)
		if err != nil {
			code := codes.InvalidArgument
			if re := (*requestError)(nil); errors.As(err, &re) {
				code = re.code
			}
			return nil, p.reject("GetPreferredAllocation", code,
				fmt.Sprintf("preferred allocation on node %s: container request %d: %v", p.opts.NodeName, i, err), nil)
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

func (p *Plugin) preferFor(ctx context.Context, cr *pluginapi.ContainerPreferredAllocationRequest, gpus []vgpu.GPU) ([]string, error) {
	avail, err := decodeSlotRequest(cr.GetAvailableDeviceIDs(), gpus)
	if err != nil {
		return nil, fmt.Errorf("available slots: %w", err)
	}
	size := int(cr.GetAllocationSize())
	if size <= 0 || size > len(avail.slots) {
		return nil, &requestError{codes.InvalidArgument,
			fmt.Sprintf("allocation size %d is not between 1 and the %d available slots", size, len(avail.slots))}
	}
	var must []string
	if len(cr.GetMustIncludeDeviceIDs()) > 0 {
		m, err := decodeSlotRequest(cr.GetMustIncludeDeviceIDs(), gpus)
		if err != nil {
			return nil, fmt.Errorf("must-include slots: %w", err)
		}
		must = m.slots
	}
	view := newAvailability(avail)
	for _, id := range must {
		if !view.set[id] {
			return nil, &requestError{codes.InvalidArgument, fmt.Sprintf("must-include slot %q is not available", id)}
		}
	}
	if len(must) > size {
		return nil, &requestError{codes.InvalidArgument,
			fmt.Sprintf("%d must-include slots exceed the allocation size %d", len(must), size)}
	}

	admitting, pods := p.kubeletAdmitting(ctx)
	if admitting == nil {
		// The kubelet cannot say which pod it admits: at least know every
		// pod it can have seen.
		p.refreshPods(ctx)
	}
	deadline := time.NewTimer(p.tune.matchWait)
	defer deadline.Stop()
	// Polled while a pod the kubelet names is missing from the API server's
	// answer too (tests create pods late; a real kubelet never sees one
	// the API server does not have).
	retry := time.NewTicker(p.tune.fetchInterval)
	defer retry.Stop()
	for {
		changed := p.index.changes()
		if ids, who, ok := p.index.preferred(view, must, size, admitting); ok {
			p.logger.V(2).Info("Preferring the slots assigned to the container the kubelet is admitting", "container", who, "slots", ids)
			return ids, nil
		}
		if p.fetchPods(ctx, pods) {
			continue
		}
		select {
		case <-changed:
			continue
		case <-retry.C:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	// Only a preference: the kubelet's record still decides every
	// container's limits, and a wrong guess is refused, never applied.
	if admitting != nil {
		if ids, who, ok := p.index.preferred(view, must, size, nil); ok {
			p.logger.Info("The kubelet's PodResources names no waiting container that fits; preferring the oldest waiting one",
				"container", who, "slots", ids)
			return ids, nil
		}
	}
	ids := binpackPreference(view, must, size)
	p.logger.Info("No waiting container fits the kubelet's preferred-allocation call; preferring distinct GPUs, fullest first",
		"size", size, "available", len(avail.slots), "slots", ids)
	return ids, nil
}

// kubeletAdmitting asks the kubelet which containers it is admitting: the
// kubelet adds a pod to the pods PodResources lists before it admits it,
// and records each container's devices only once Allocate returned, so the
// containers listed without devices are those still to be allocated. The
// kubelet admits one pod at a time, so this names the pod of the call: a
// pod bound later but older, which the kubelet has not seen, is not there.
// Init containers are never listed; those of a listed pod are allowed. It
// returns nil (no filter) when the kubelet cannot be asked. It also returns
// the pods with containers still to be allocated, for fetchPods.
func (p *Plugin) kubeletAdmitting(ctx context.Context) (func(*podEntry, *assignedContainer) bool, []podName) {
	lctx, cancel := context.WithTimeout(ctx, p.tune.podResourcesTimeout)
	defer cancel()
	containers, err := p.podResources.list(lctx, p.opts.ResourceName)
	if err != nil {
		p.logger.Error(err, "Asking the kubelet which pod it admits; preferring by age")
		return nil, nil
	}
	pods := map[string]bool{}
	waiting := map[string]bool{}
	var names []podName
	for _, kc := range containers {
		pods[kc.namespace+"/"+kc.pod] = true
		if len(kc.devices) == 0 {
			waiting[kc.namespace+"/"+kc.pod+"/"+kc.container] = true
			if n := (podName{kc.namespace, kc.pod}); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return func(e *podEntry, c *assignedContainer) bool {
		if c.init {
			return pods[e.key()]
		}
		return waiting[e.key()+"/"+c.name]
	}, names
}

// preferred finds the oldest waiting container (of those allow allows,
// when allow is not nil) that the call fits: first
// one whose assigned slots are all available (and include must), then one
// whose assigned GPUs all have an available slot, for which it picks a slot
// per GPU (the Allocate that follows then matches by GPUs). It returns the
// slots and the container's name for the log.
func (ix *podIndex) preferred(view availability, must []string, size int, allow func(*podEntry, *assignedContainer) bool) ([]string, string, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	var ids []string
	var who string
	each := func(fn func(candidate) bool) {
		ix.eachUnservedLocked(func(c candidate) bool {
			if allow != nil && !allow(c.entry, c.container) {
				return true
			}
			return fn(c)
		})
	}
	each(func(c candidate) bool {
		if len(c.container.slots) != size || !containsAll(c.container.slots, must) {
			return true
		}
		for _, id := range c.container.slots {
			if !view.set[id] {
				return true
			}
		}
		ids, who = slices.Clone(c.container.slots), c.entry.key()+"/"+c.container.name
		return false
	})
	if ids != nil {
		return ids, who, true
	}
	each(func(c candidate) bool {
		if len(c.container.gpus) != size {
			return true
		}
		if picked, ok := view.pickOnGPUs(c.container, must); ok {
			ids, who = picked, c.entry.key()+"/"+c.container.name
			return false
		}
		return true
	})
	return ids, who, ids != nil
}

// pickOnGPUs picks one available slot on each of the container's GPUs:
// a must-include slot, else the assigned slot, else the lowest free one.
func (a availability) pickOnGPUs(c *assignedContainer, must []string) ([]string, bool) {
	mustOn := make(map[string]string, len(must))
	for _, id := range must {
		uuid, _, _ := vgpu.ParseSlotID(id)
		if _, dup := mustOn[uuid]; dup || !slices.Contains(c.gpus, uuid) {
			return nil, false
		}
		mustOn[uuid] = id
	}
	out := make([]string, 0, len(c.devices))
	for _, d := range c.devices {
		switch id, ok := mustOn[d.UUID]; {
		case ok:
			out = append(out, id)
		case a.set[d.SlotID]:
			out = append(out, d.SlotID)
		case len(a.byGPU[d.UUID]) > 0:
			out = append(out, a.byGPU[d.UUID][0])
		default:
			return nil, false
		}
	}
	return out, true
}

// binpackPreference is the answer when no waiting container fits: the
// must-include slots, then one slot on each further GPU, fullest GPU (fewest
// free slots) first, then any free slots.
func binpackPreference(a availability, must []string, size int) []string {
	out := slices.Clone(must)
	chosen := make(map[string]bool, size)
	usedGPU := map[string]bool{}
	for _, id := range must {
		chosen[id] = true
		uuid, _, _ := vgpu.ParseSlotID(id)
		usedGPU[uuid] = true
	}
	gpus := make([]string, 0, len(a.byGPU))
	for uuid := range a.byGPU {
		gpus = append(gpus, uuid)
	}
	slices.SortFunc(gpus, func(x, y string) int {
		return cmp.Or(cmp.Compare(len(a.byGPU[x]), len(a.byGPU[y])), cmp.Compare(x, y))
	})
	for _, uuid := range gpus {
		if len(out) == size {
			return out
		}
		if !usedGPU[uuid] {
			out = append(out, a.byGPU[uuid][0])
			chosen[a.byGPU[uuid][0]] = true
		}
	}
	for _, id := range a.sorted {
		if len(out) == size {
			break
		}
		if !chosen[id] {
			out = append(out, id)
			chosen[id] = true
		}
	}
	return out
}
