package gpustate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// HAMi's resources, read only under compat: hami. Their meaning is HAMi's
// (v2.x, pkg/device/nvidia GenerateResourceRequests and Fit): nvidia.com/gpu
// counts distinct GPUs, as Tessera's vgpu does, but memory and cores are
// per GPU where Tessera's are totals, and memory may be a percentage of each
// GPU's memory. This file is the only place that reads them: one codec for
// both vocabularies, used by the extender, the estimator and the fleet view.

// quantity is one resource amount and whether the list named it.
type quantity struct {
	v   int64
	set bool
}

// hamiAmounts are one container's HAMi-only quantities.
type hamiAmounts struct {
	mem, pct, cores, priority quantity
}

// quantities lists the HAMi resources with where each is read into.
func (h *hamiAmounts) quantities() []struct {
	name string
	slot *quantity
} {
	return []struct {
		name string
		slot *quantity
	}{
		{config.HAMiMemory, &h.mem},
		{config.HAMiMemoryPercent, &h.pct},
		{config.HAMiCores, &h.cores},
		{config.HAMiPriority, &h.priority},
	}
}

func (h hamiAmounts) any() bool { return h.mem.set || h.pct.set || h.cores.set || h.priority.set }

// mergeHAMi takes the limit of each HAMi resource, or the request where no
// limit is given; the two must agree, as for Tessera's own.
func mergeHAMi(container string, limits, requests hamiAmounts) (hamiAmounts, error) {
	var merged hamiAmounts
	l, r, m := limits.quantities(), requests.quantities(), merged.quantities()
	for i := range m {
		v, set, err := mergeLimit(container, m[i].name, l[i].slot.v, l[i].slot.set, r[i].slot.v, r[i].slot.set)
		if err != nil {
			return hamiAmounts{}, err
		}
		*m[i].slot = quantity{v: v, set: set}
	}
	return merged, nil
}

// hamiRequest reads a container in HAMi's vocabulary. replica is set for
// Karmada's sum over a pod's containers: percentages and cores summed over
// containers are capped at a whole GPU there, which can only reserve more.
func (a amounts) hamiRequest(container string, cfg config.Config, replica bool) (vgpu.ContainerRequest, bool, error) {
	h := a.hami
	if replica && !a.gpusSet && cfg.HAMi.DefaultGPUNum > 0 {
		// Karmada reads the workload's template, which the member's
		// admission webhook has not seen: its pods will get
		// defaultGPUNum GPUs (HAMiDefaultGPUs), so that is what fits.
		a.gpus, a.gpusSet = int64(cfg.HAMi.DefaultGPUNum), true
	}
	switch {
	case h.priority.set:
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q: resource %s is not supported: Tessera has no task priority; remove it",
			container, config.HAMiPriority)
	case a.memorySet || a.coresSet:
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q mixes Tessera's %s/%s (totals over its GPUs) with HAMi's %s/%s/%s (per GPU): use one of them",
			container, cfg.Resources.Memory, cfg.Resources.Cores, config.HAMiMemory, config.HAMiMemoryPercent, config.HAMiCores)
	case !a.gpusSet:
		// The admission webhook adds nvidia.com/gpu (hami.defaultGPUNum)
		// to such a container when the pod is created; this one was not
		// mutated (webhook not installed, unreachable, defaultGPUNum 0, or
		// memory in requests only). Without it the kubelet never asks the
		// device plugin for GPUs, so placing it would run it without any.
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for HAMi's GPU memory or cores without %s in its limits, and Tessera's admission webhook did not add it (hami.defaultGPUNum %d; is the webhook installed?); add %s: 1 to its limits",
			container, config.HAMiGPU, cfg.HAMi.DefaultGPUNum, config.HAMiGPU)
	case a.gpus == 0:
		if h.mem.v > 0 || h.pct.v > 0 || h.cores.v > 0 {
			return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for GPU memory or cores with %s: 0", container, config.HAMiGPU)
		}
		return vgpu.ContainerRequest{}, false, nil
	case a.gpus > MaxGPUsPerContainer:
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for %d GPUs; at most %d are supported", container, a.gpus, MaxGPUsPerContainer)
	}
	cr := vgpu.ContainerRequest{Name: container, GPUs: int(a.gpus)}
	// HAMi's order: gpumem when positive, else gpumem-percentage, else
	// defaultMemory, else all of each GPU's memory.
	switch {
	case h.mem.v > 0:
		if h.mem.v > MaxMemoryMiBPerContainer {
			return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for %d MiB per GPU; at most %d are supported", container, h.mem.v, int64(MaxMemoryMiBPerContainer))
		}
		cr.MemoryMiBPerGPU = h.mem.v
	case h.pct.set:
		p := h.pct.v
		if replica {
			p = min(p, 100)
		}
		switch {
		case p < 1 || p > 100:
			return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q: resource %s: %d is outside 1-100 (percent of each GPU's memory)", container, config.HAMiMemoryPercent, p)
		case p == 100:
			cr.WholeMemory = true
		default:
			cr.MemoryPercent = int(p)
		}
	case cfg.HAMi.DefaultMemory > 0:
		cr.MemoryMiBPerGPU = cfg.HAMi.DefaultMemory
	default:
		cr.WholeMemory = true
	}
	cores := int64(cfg.HAMi.DefaultCores)
	if h.cores.set {
		cores = h.cores.v
	}
	if replica {
		cores = min(cores, vgpu.FullCores)
	}
	if cores > vgpu.FullCores {
		// HAMi caps such a request at 100 with a log line; a request that
		// cannot mean what it says is refused here, with the reason.
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q: resource %s: %d%% is more than 100%% per GPU", container, config.HAMiCores, cores)
	}
	cr.CoresPerGPU = int(cores)
	if err := (vgpu.PodRequest{Containers: []vgpu.ContainerRequest{cr}}).Validate(); err != nil {
		return vgpu.ContainerRequest{}, false, err
	}
	return cr, true, nil
}

// HAMiDefaultGPUs is the nvidia.com/gpu that HAMi's admission webhook adds
// to a container's limits (HAMi v2.x, pkg/device/nvidia MutateAdmission):
// hami.defaultGPUNum when the limits name gpumem, gpumem-percentage or
// gpucores but not nvidia.com/gpu, else 0. Like HAMi it reads the limits
// only: the API server refuses an extended resource given in requests
// alone, and a count given in requests only is not a limit. An unreadable
// quantity in the limits is an error, which the extender would also refuse.
func HAMiDefaultGPUs(c *corev1.Container, cfg config.Config) (int, error) {
	if c == nil || cfg.Compat != config.CompatHAMi || cfg.HAMi.DefaultGPUNum == 0 {
		return 0, nil
	}
	a, err := listAmounts(c.Resources.Limits, cfg, c.Name)
	if err != nil {
		return 0, err
	}
	if a.gpusSet || !(a.hami.mem.set || a.hami.pct.set || a.hami.cores.set) {
		return 0, nil
	}
	return cfg.HAMi.DefaultGPUNum, nil
}
