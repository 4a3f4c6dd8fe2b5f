package config

import (
	"fmt"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Compatibility profiles: another scheduler's pod vocabulary that every
// component accepts, with that scheduler's meaning, beside Tessera's own.
const (
	// CompatNone accepts Tessera's names only.
	CompatNone = ""
	// CompatHAMi accepts HAMi's resources and annotations (docs/migrating-from-hami.md).
	CompatHAMi = "hami"
)

// HAMi's NVIDIA resource names (its chart's resourceName, resourceMem,
// resourceMemPercentage, resourceCores and resourcePriority).
const (
	HAMiGPU           = "nvidia.com/gpu"
	HAMiMemory        = "nvidia.com/gpumem"
	HAMiMemoryPercent = "nvidia.com/gpumem-percentage"
	HAMiCores         = "nvidia.com/gpucores"
	// HAMiPriority is HAMi's task priority, which Tessera does not support:
	// a pod that asks for it is refused with an event that names it.
	HAMiPriority = "nvidia.com/priority"
)

// HAMiDefaults are HAMi's defaults for what a pod leaves out, as its chart
// sets them (device-config's nvidia.defaultMemory, defaultCores and
// defaultGPUNum, and scheduler.defaultSchedulerPolicy). A cluster that
// changed them in HAMi sets the same values here.
type HAMiDefaults struct {
	// DefaultGPUNum is the nvidia.com/gpu that the admission webhook
	// (pkg/admission) adds to the limits of a container that asks for
	// HAMi's memory or cores without it, as HAMi's webhook does; 0 adds
	// nothing, and such a container is refused.
	DefaultGPUNum int `json:"defaultGPUNum"`
	// DefaultMemory is the memory in MiB on each GPU of a container that
	// gives neither gpumem nor gpumem-percentage; 0 means the whole memory.
	DefaultMemory int64 `json:"defaultMemory"`
	// DefaultCores is the core share in percent on each GPU of a container
	// that gives no gpucores; 0 means no core cap.
	DefaultCores int `json:"defaultCores"`
	// NodeSchedulerPolicy and GPUSchedulerPolicy apply to pods that name
	// no policy: "binpack" or "spread" (HAMi: binpack and spread).
	NodeSchedulerPolicy vgpu.Policy `json:"nodeSchedulerPolicy"`
	GPUSchedulerPolicy  vgpu.Policy `json:"gpuSchedulerPolicy"`
}

// defaultHAMi is HAMi's chart as shipped.
func defaultHAMi() HAMiDefaults {
	return HAMiDefaults{DefaultGPUNum: 1, NodeSchedulerPolicy: vgpu.Binpack, GPUSchedulerPolicy: vgpu.Spread}
}

// maxDefaultMemoryMiB bounds hami.defaultMemory (1 PiB, beyond any GPU).
const maxDefaultMemoryMiB = 1 << 30

// MaxDefaultGPUNum bounds hami.defaultGPUNum: the most GPUs one container
// may ask for (gpustate.MaxGPUsPerContainer, which a test keeps equal).
const MaxDefaultGPUNum = 1024

// applyProfile sets what a profile implies and the file did not say: under
// HAMi the device plugin must advertise HAMi's nvidia.com/gpu, since that is
// what HAMi's pods ask the kubelet for.
func (c *Config) applyProfile() {
	if c.Compat == CompatHAMi && c.Resources.VGPU == Default().Resources.VGPU {
		c.Resources.VGPU = HAMiGPU
	}
}

// validateCompat reports the problems of the compatibility profile.
func (c Config) validateCompat() []error {
	switch c.Compat {
	case CompatNone:
		if c.HAMi != defaultHAMi() {
			// Settings that would be silently ignored are a mistake.
			return []error{fmt.Errorf("hami: set, but compat is not %q", CompatHAMi)}
		}
		return nil
	case CompatHAMi:
	default:
		return []error{fmt.Errorf("compat: %q is neither %q (Tessera's names only) nor %q", c.Compat, CompatNone, CompatHAMi)}
	}
	var errs []error
	if c.Resources.VGPU != HAMiGPU {
		errs = append(errs, fmt.Errorf("resources.vgpu: %q, but compat %q needs %q (HAMi's pods ask the kubelet for it); leave it out", c.Resources.VGPU, CompatHAMi, HAMiGPU))
	}
	// Tessera's memory and cores are totals, HAMi's are per GPU: one name
	// cannot mean both.
	for _, n := range []struct{ field, name string }{{"memory", c.Resources.Memory}, {"cores", c.Resources.Cores}} {
		switch n.name {
		case HAMiGPU, HAMiMemory, HAMiMemoryPercent, HAMiCores, HAMiPriority:
			errs = append(errs, fmt.Errorf("resources.%s: %q is one of HAMi's names, which compat %q reads with HAMi's meaning", n.field, n.name, CompatHAMi))
		}
	}
	h := c.HAMi
	if h.DefaultMemory < 0 || h.DefaultMemory > maxDefaultMemoryMiB {
		errs = append(errs, fmt.Errorf("hami.defaultMemory: %d MiB is outside 0-%d", h.DefaultMemory, maxDefaultMemoryMiB))
	}
	if h.DefaultGPUNum < 0 || h.DefaultGPUNum > MaxDefaultGPUNum {
		errs = append(errs, fmt.Errorf("hami.defaultGPUNum: %d is outside 0-%d", h.DefaultGPUNum, MaxDefaultGPUNum))
	}
	if h.DefaultCores < 0 || h.DefaultCores > vgpu.FullCores {
		errs = append(errs, fmt.Errorf("hami.defaultCores: %d is outside 0-%d", h.DefaultCores, vgpu.FullCores))
	}
	for _, p := range []struct {
		field  string
		policy vgpu.Policy
	}{{"nodeSchedulerPolicy", h.NodeSchedulerPolicy}, {"gpuSchedulerPolicy", h.GPUSchedulerPolicy}} {
		if p.policy != vgpu.Binpack && p.policy != vgpu.Spread {
			errs = append(errs, fmt.Errorf("hami.%s: %q is neither %q nor %q", p.field, p.policy, vgpu.Binpack, vgpu.Spread))
		}
	}
	return errs
}

// AnnotationCompat is how the pod options codec reads the profile.
func (c Config) AnnotationCompat() annotations.Compat {
	if c.Compat != CompatHAMi {
		return annotations.Compat{}
	}
	return annotations.Compat{HAMi: true, NodePolicy: c.HAMi.NodeSchedulerPolicy, GPUPolicy: c.HAMi.GPUSchedulerPolicy}
}

// PodResources are the resource names a pod may ask for under this
// configuration: Tessera's three, and HAMi's under compat: hami. They are
// what a kube-scheduler configuration lists as the extender's
// managedResources (the chart's scheduler-config template lists the same).
func (c Config) PodResources() []string {
	names := []string{c.Resources.VGPU, c.Resources.Memory, c.Resources.Cores}
	if c.Compat == CompatHAMi {
		names = append(names, HAMiMemory, HAMiMemoryPercent, HAMiCores)
		if c.Resources.VGPU != HAMiGPU {
			names = append(names, HAMiGPU)
		}
	}
	return names
}
