package annotations

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Compat is another scheduler's pod vocabulary, read by the same codec as
// Tessera's own keys (DecodePodOptions), so that the two never disagree.
type Compat struct {
	// HAMi reads HAMi's pod annotations with HAMi's meaning.
	HAMi bool
	// NodePolicy and GPUPolicy are used for a pod that names no policy
	// (HAMi's scheduler defaults); empty means binpack.
	NodePolicy, GPUPolicy vgpu.Policy
}

// HAMi's pod annotations (HAMi v2.x, pkg/device/nvidia and pkg/scheduler).
const (
	HAMiUseGPUType    = "nvidia.com/use-gputype"
	HAMiNoUseGPUType  = "nvidia.com/nouse-gputype"
	HAMiUseGPUUUID    = "nvidia.com/use-gpuuuid"
	HAMiNoUseGPUUUID  = "nvidia.com/nouse-gpuuuid"
	HAMiNodePolicy    = "hami.io/node-scheduler-policy"
	HAMiGPUPolicy     = "hami.io/gpu-scheduler-policy"
	HAMiVGPUMode      = "nvidia.com/vgpu-mode"
	HAMiNUMABind      = "nvidia.com/numa-bind"
	hamiCoreMode      = "hami-core"
	hamiTopologyAware = "topology-aware"
)

// hamiEquivalents pairs each HAMi key with the Tessera key of the same
// meaning: a pod may set either, never both (their values could disagree).
func (k Keys) hamiEquivalents() []struct{ hami, tessera string } {
	return []struct{ hami, tessera string }{
		{HAMiUseGPUType, k.GPUModelInclude},
		{HAMiNoUseGPUType, k.GPUModelExclude},
		{HAMiUseGPUUUID, k.GPUUUIDInclude},
		{HAMiNoUseGPUUUID, k.GPUUUIDExclude},
		{HAMiNodePolicy, k.NodePolicy},
		{HAMiGPUPolicy, k.GPUPolicy},
	}
}

// withHAMi returns the pod's annotations with each HAMi key moved to its
// Tessera equivalent, after refusing what Tessera cannot honour: the rest
// of DecodePodOptions then reads one vocabulary with one set of rules.
// HAMi's meanings match Tessera's for every key moved: model lists are
// case-insensitive substrings, UUID lists exact, policies binpack or spread.
func (k Keys) withHAMi(in map[string]string) (out, renamed map[string]string, err error) {
	if err := hamiUnsupported(in); err != nil {
		return nil, nil, err
	}
	out = in
	for _, e := range k.hamiEquivalents() {
		v, ok := in[e.hami]
		if !ok {
			continue
		}
		if _, both := in[e.tessera]; both {
			return nil, nil, fmt.Errorf("annotations %s and %s mean the same: set one of them", e.hami, e.tessera)
		}
		if renamed == nil {
			// The pod's own map is never written: copy it once.
			out, renamed = maps.Clone(in), map[string]string{}
		}
		out[e.tessera], renamed[e.tessera] = v, e.hami
	}
	return out, renamed, nil
}

// hamiUnsupported refuses HAMi options that Tessera does not implement, by
// name: placing the pod without them would silently give it less than it
// asked for.
func hamiUnsupported(in map[string]string) error {
	if mode, ok := in[HAMiVGPUMode]; ok && !strings.EqualFold(strings.TrimSpace(mode), hamiCoreMode) {
		return fmt.Errorf("annotation %s: %q is not supported: Tessera shares GPUs as HAMi's %q mode does (no MIG or MPS); remove the annotation or set %q",
			HAMiVGPUMode, mode, hamiCoreMode, hamiCoreMode)
	}
	if v, ok := in[HAMiNUMABind]; ok {
		if bind, err := strconv.ParseBool(strings.TrimSpace(v)); err != nil || bind {
			return fmt.Errorf("annotation %s: %q is not supported: Tessera does not keep a pod's GPUs on one NUMA node; remove the annotation", HAMiNUMABind, v)
		}
	}
	if p, ok := in[HAMiGPUPolicy]; ok && strings.EqualFold(strings.TrimSpace(p), hamiTopologyAware) {
		return fmt.Errorf("annotation %s: %q is not supported: Tessera does not score GPU interconnects; use %q or %q",
			HAMiGPUPolicy, p, vgpu.Binpack, vgpu.Spread)
	}
	return nil
}
