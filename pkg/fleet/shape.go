package fleet

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

const bytesPerMiB = 1 << 20

// Shape is a replica given by its vGPU request alone, as `tessera fit
// --vgpu --memory --cores` and the page's form give it.
type Shape struct {
	// VGPUs is the number of distinct GPUs; 0 means 1.
	VGPUs int `json:"vgpus"`
	// Memory is the total GPU memory: a quantity (40Gi) or a number of
	// MiB; empty asks for whole GPUs.
	Memory string `json:"memory"`
	// Cores is the total core share in percent of one GPU; 0 is no cap.
	Cores int `json:"cores"`
}

// Template is a pod template with one container asking for the shape,
// requests equal to limits as Kubernetes requires for extended resources.
func (s Shape) Template(names config.ResourceNames) (corev1.PodTemplateSpec, error) {
	vgpus := s.VGPUs
	if vgpus == 0 {
		vgpus = 1
	}
	if vgpus < 0 || vgpus > gpustate.MaxGPUsPerContainer {
		return corev1.PodTemplateSpec{}, fmt.Errorf("vGPUs must be between 1 and %d, not %d", gpustate.MaxGPUsPerContainer, s.VGPUs)
	}
	if s.Cores < 0 || s.Cores > vgpu.FullCores*vgpus {
		return corev1.PodTemplateSpec{}, fmt.Errorf("cores must be between 0 and %d (%d per vGPU), not %d", vgpu.FullCores*vgpus, vgpu.FullCores, s.Cores)
	}
	rl := corev1.ResourceList{corev1.ResourceName(names.VGPU): *resource.NewQuantity(int64(vgpus), resource.DecimalSI)}
	if strings.TrimSpace(s.Memory) != "" {
		mib, err := ParseMemoryMiB(s.Memory)
		if err != nil {
			return corev1.PodTemplateSpec{}, fmt.Errorf("memory: %w", err)
		}
		rl[corev1.ResourceName(names.Memory)] = *resource.NewQuantity(mib, resource.DecimalSI)
	}
	if s.Cores > 0 {
		rl[corev1.ResourceName(names.Cores)] = *resource.NewQuantity(int64(s.Cores), resource.DecimalSI)
	}
	var t corev1.PodTemplateSpec
	t.Spec.Containers = []corev1.Container{{Name: "replica", Resources: corev1.ResourceRequirements{Limits: rl, Requests: rl.DeepCopy()}}}
	return t, nil
}

// ParseMemoryMiB reads GPU memory as a quantity with a unit (40Gi, 10240Mi,
// 42949672960) or a plain number of MiB (10240), as Tessera's memory
// resource counts it. It must come to a whole, positive number of MiB.
func ParseMemoryMiB(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n <= 0 || n > gpustate.MaxMemoryMiBPerContainer {
			return 0, fmt.Errorf("%q MiB is out of range (1 to %d)", s, int64(gpustate.MaxMemoryMiBPerContainer))
		}
		return n, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%q is neither a number of MiB nor a quantity such as 40Gi", s)
	}
	bytes, ok := q.AsInt64()
	if !ok || bytes <= 0 || bytes%bytesPerMiB != 0 {
		return 0, fmt.Errorf("%q is not a positive whole number of MiB (1Mi = 1048576 bytes)", s)
	}
	mib := bytes / bytesPerMiB
	if mib > gpustate.MaxMemoryMiBPerContainer {
		return 0, fmt.Errorf("%q is out of range (at most %d MiB)", s, int64(gpustate.MaxMemoryMiBPerContainer))
	}
	return mib, nil
}
