package fakekubelet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// Allocate calls the plugin's Allocate for one container with the given
// device IDs, as the kubelet does (one container per call). It does not
// mark the devices in use; AdmitPod does.
func (k *Kubelet) Allocate(ctx context.Context, containerSlots []string) (*pluginapi.ContainerAllocateResponse, error) {
	client, err := k.client()
	if err != nil {
		return nil, err
	}
	resp, err := client.Allocate(ctx, &pluginapi.AllocateRequest{
		ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: containerSlots}},
	})
	if err != nil {
		return nil, fmt.Errorf("allocate %v: %w", containerSlots, err)
	}
	if n := len(resp.GetContainerResponses()); n != 1 {
		return nil, fmt.Errorf("allocate %v: the plugin answered with %d container responses, want 1", containerSlots, n)
	}
	return resp.GetContainerResponses()[0], nil
}

// AllocateRequest sends a raw Allocate request (for tests of how a plugin
// handles requests the kubelet would not send).
func (k *Kubelet) AllocateRequest(ctx context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	client, err := k.client()
	if err != nil {
		return nil, err
	}
	return client.Allocate(ctx, req)
}

// GetPreferredAllocation asks the plugin which size devices of available
// (including mustInclude) it prefers for one container.
func (k *Kubelet) GetPreferredAllocation(ctx context.Context, available, mustInclude []string, size int) ([]string, error) {
	client, err := k.client()
	if err != nil {
		return nil, err
	}
	resp, err := client.GetPreferredAllocation(ctx, &pluginapi.PreferredAllocationRequest{
		ContainerRequests: []*pluginapi.ContainerPreferredAllocationRequest{{
			AvailableDeviceIDs:   available,
			MustIncludeDeviceIDs: mustInclude,
			AllocationSize:       int32(size),
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("get preferred allocation of %d from %d devices: %w", size, len(available), err)
	}
	if n := len(resp.GetContainerResponses()); n != 1 {
		return nil, fmt.Errorf("get preferred allocation: the plugin answered with %d container responses, want 1", n)
	}
	return resp.GetContainerResponses()[0].GetDeviceIDs(), nil
}

// ContainerAllocation is what AdmitPod did for one container.
type ContainerAllocation struct {
	Container string
	// Devices are the device IDs the kubelet chose and allocated.
	Devices []string
	// Preferred is set when GetPreferredAllocation was asked first.
	Preferred bool
	Response  *pluginapi.ContainerAllocateResponse
}

// AdmitPod allocates devices to every container of the pod that requests
// the resource, init containers first, like the kubelet's device manager:
// it picks N healthy free devices, asking GetPreferredAllocation first only
// when more than N are free (and the plugin offers it), then calls
// Allocate and marks the devices in use by the pod. Like the kubelet, it
// adds the pod to its pod manager (PodResources lists it) before admitting
// it, records each container's devices once Allocate returned, admits one
// pod at a time, and then starts the containers: PreStartContainer, when
// the plugin asks for it, with each container's devices. On failure the
// pod's devices are released and the pod forgotten, as the kubelet does
// for a rejected pod.
func (k *Kubelet) AdmitPod(ctx context.Context, pod *corev1.Pod) ([]ContainerAllocation, error) {
	k.admitting.Lock()
	defer k.admitting.Unlock()
	k.addKnown(pod)
	var out []ContainerAllocation
	containers := slices.Concat(pod.Spec.InitContainers, pod.Spec.Containers)
	for _, c := range containers {
		n := requested(c, corev1.ResourceName(k.resourceName))
		if n == 0 {
			continue
		}
		alloc, err := k.admitContainer(ctx, pod, c.Name, n)
		if err != nil {
			k.ReleasePod(pod)
			return nil, fmt.Errorf("admit pod %s/%s: container %s: %w", pod.Namespace, pod.Name, c.Name, err)
		}
		out = append(out, alloc)
	}
	if err := k.startContainers(ctx, out); err != nil {
		k.ReleasePod(pod)
		return nil, fmt.Errorf("admit pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return out, nil
}

// startContainers calls PreStartContainer for each allocated container when
// the plugin's options ask for it, as the kubelet does before it starts a
// container (by then the allocation is recorded, so PodResources names it).
func (k *Kubelet) startContainers(ctx context.Context, allocs []ContainerAllocation) error {
	k.mu.Lock()
	preStart := k.options.GetPreStartRequired()
	k.mu.Unlock()
	if !preStart {
		return nil
	}
	client, err := k.client()
	if err != nil {
		return err
	}
	for _, a := range allocs {
		if _, err := client.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: a.Devices}); err != nil {
			return fmt.Errorf("start container %s: PreStartContainer %v: %w", a.Container, a.Devices, err)
		}
	}
	return nil
}

// PreStartContainer calls the plugin's PreStartContainer with a
// container's device IDs, as the kubelet does before it starts the
// container (for tests that allocate and record by hand).
func (k *Kubelet) PreStartContainer(ctx context.Context, ids []string) error {
	client, err := k.client()
	if err != nil {
		return err
	}
	if _, err := client.PreStartContainer(ctx, &pluginapi.PreStartContainerRequest{DevicesIds: ids}); err != nil {
		return fmt.Errorf("PreStartContainer %v: %w", ids, err)
	}
	return nil
}

func (k *Kubelet) admitContainer(ctx context.Context, pod *corev1.Pod, container string, n int) (ContainerAllocation, error) {
	owner := string(pod.UID) + "/" + container
	alloc := ContainerAllocation{Container: container}
	free, preferredAvailable := k.freeDevices()
	if len(free) < n {
		return alloc, fmt.Errorf("%d healthy free devices, %d requested", len(free), n)
	}
	chosen := free[:n]
	if len(free) > n && preferredAvailable {
		preferred, err := k.GetPreferredAllocation(ctx, free, nil, n)
		if err != nil {
			return alloc, err
		}
		alloc.Preferred = true
		chosen = fillFrom(preferred, free, n)
	}
	if err := k.reserve(owner, chosen); err != nil {
		return alloc, err
	}
	resp, err := k.Allocate(ctx, chosen)
	if err != nil {
		k.release(func(o string) bool { return o == owner })
		return alloc, err
	}
	k.mu.Lock()
	hook := k.afterAllocate
	k.mu.Unlock()
	if hook != nil {
		hook(pod, container, chosen)
	}
	k.recordDevices(pod.UID, container, chosen)
	alloc.Devices, alloc.Response = chosen, resp
	return alloc, nil
}

// OnAllocated sets a function called after each successful Allocate and
// before the kubelet records it (so before PodResources names it): tests
// restart a device plugin there, between Allocate and its resolution.
func (k *Kubelet) OnAllocated(fn func(pod *corev1.Pod, container string, devices []string)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.afterAllocate = fn
}

// fillFrom keeps the preferred devices that are free (at most n) and adds
// free ones until there are n, as the kubelet does with a preference that
// is short or stale.
func fillFrom(preferred, free []string, n int) []string {
	out := make([]string, 0, n)
	for _, id := range preferred {
		if len(out) < n && slices.Contains(free, id) && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	for _, id := range free {
		if len(out) < n && !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// Reserve marks devices in use by owner outside any pod admission, as
// devices the kubelet's checkpoint holds for a pod the plugin does not know.
func (k *Kubelet) Reserve(owner string, ids []string) error { return k.reserve(owner, ids) }

// freeDevices lists the healthy devices not in use, sorted.
func (k *Kubelet) freeDevices() ([]string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var free []string
	for _, d := range k.devices {
		if _, used := k.inUse[d.GetID()]; !used && d.GetHealth() == pluginapi.Healthy {
			free = append(free, d.GetID())
		}
	}
	slices.Sort(free)
	return free, k.options.GetGetPreferredAllocationAvailable()
}

// reserve marks devices in use by owner, failing if one already is (a
// concurrent admission took it).
func (k *Kubelet) reserve(owner string, ids []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, id := range ids {
		if other, used := k.inUse[id]; used {
			return fmt.Errorf("device %s is already in use by %s", id, other)
		}
	}
	for _, id := range ids {
		k.inUse[id] = owner
	}
	k.notifyLocked()
	return nil
}

func (k *Kubelet) release(match func(owner string) bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	maps.DeleteFunc(k.inUse, func(_, owner string) bool { return match(owner) })
	k.notifyLocked()
}

// ReleasePod frees the devices of a pod and drops it from the pods that
// PodResources lists, as the kubelet does when a pod terminates.
func (k *Kubelet) ReleasePod(pod *corev1.Pod) {
	prefix := string(pod.UID) + "/"
	k.mu.Lock()
	delete(k.known, pod.UID)
	k.mu.Unlock()
	k.release(func(owner string) bool { return strings.HasPrefix(owner, prefix) })
}

// InUse returns a copy of the devices in use and their owners
// ("<pod UID>/<container>").
func (k *Kubelet) InUse() map[string]string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.inUse)
}

func requested(c corev1.Container, resource corev1.ResourceName) int {
	q, ok := c.Resources.Limits[resource]
	if !ok {
		q = c.Resources.Requests[resource]
	}
	return int(q.Value())
}
