package gpustate

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Bounds on one container's request. They are far above any real GPU node
// and exist so that the arithmetic on requests (splitting totals over GPUs,
// multiplying by replicas) can never overflow.
const (
	// MaxGPUsPerContainer bounds tessera.io/vgpu.
	MaxGPUsPerContainer = 1024
	// MaxMemoryMiBPerContainer bounds tessera.io/vgpu-memory (1 EiB).
	MaxMemoryMiBPerContainer = 1 << 40
)

// ReplicaContainerName names the single container that a Karmada replica's
// aggregated resource request is treated as.
const ReplicaContainerName = "replica"

// PodRequest builds the fit algorithm's request from a pod: one container
// request per container that asks for Tessera resources (init containers
// first, in pod order), and the placement options from the pod's
// annotations.
//
// Init containers are counted as if they ran beside the app containers.
// That can only over-reserve (the kubelet may hand an init container's
// devices on to an app container), never place a pod where it cannot run.
func PodRequest(pod *corev1.Pod, cfg config.Config) (vgpu.PodRequest, error) {
	if pod == nil {
		return vgpu.PodRequest{}, fmt.Errorf("read GPU request: pod is nil")
	}
	keys, err := annotations.NewKeys(cfg.AnnotationPrefix)
	if err != nil {
		return vgpu.PodRequest{}, fmt.Errorf("read GPU request of pod %s: %w", podName(pod), err)
	}
	keys.Compat = cfg.AnnotationCompat()
	opts, err := annotations.DecodePodOptions(keys, pod.Annotations)
	if err != nil {
		return vgpu.PodRequest{}, fmt.Errorf("read GPU options of pod %s: %w", podName(pod), err)
	}
	req := vgpu.PodRequest{Selector: opts.Selector, GPUPolicy: opts.GPUPolicy}
	containers := make([]corev1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	containers = append(containers, pod.Spec.InitContainers...)
	containers = append(containers, pod.Spec.Containers...)
	for i := range containers {
		c := &containers[i]
		amounts, err := containerAmounts(c, cfg)
		if err != nil {
			return vgpu.PodRequest{}, fmt.Errorf("read GPU request of pod %s: %w", podName(pod), err)
		}
		cr, asks, err := amounts.request(c.Name, cfg, false)
		if err != nil {
			return vgpu.PodRequest{}, fmt.Errorf("read GPU request of pod %s: %w", podName(pod), err)
		}
		if asks {
			req.Containers = append(req.Containers, cr)
		}
	}
	return req, nil
}

// RequestFromResources builds the fit algorithm's request from the resource
// request of one Karmada replica (pb.ReplicaRequirements): Karmada sends the
// sum over the pod's containers, so it is treated as one container. That is
// conservative: one container's N GPUs must be distinct, while N containers
// of one GPU each could share. asksForGPUs is false when rl names no
// Tessera resource (or names only a zero vGPU count).
func RequestFromResources(rl corev1.ResourceList, cfg config.Config) (req vgpu.PodRequest, asksForGPUs bool, err error) {
	amounts, err := listAmounts(rl, cfg, "")
	if err != nil {
		return vgpu.PodRequest{}, false, fmt.Errorf("read GPU request of replica: %w", err)
	}
	cr, asks, err := amounts.request(ReplicaContainerName, cfg, true)
	if err != nil {
		return vgpu.PodRequest{}, false, fmt.Errorf("read GPU request of replica: %w", err)
	}
	if !asks {
		return vgpu.PodRequest{GPUPolicy: vgpu.Binpack}, false, nil
	}
	return vgpu.PodRequest{Containers: []vgpu.ContainerRequest{cr}, GPUPolicy: vgpu.Binpack}, true, nil
}

// IsTesseraResource reports whether name is one of the configured Tessera
// resources.
func IsTesseraResource(name corev1.ResourceName, names config.ResourceNames) bool {
	n := string(name)
	return n == names.VGPU || n == names.Memory || n == names.Cores
}

// amounts are one container's Tessera resource quantities (and, under the
// HAMi profile, HAMi's).
type amounts struct {
	gpus, memoryMiB, cores int64
	gpusSet, memorySet     bool
	coresSet               bool
	hami                   hamiAmounts
}

// request turns the amounts into the fit algorithm's request. replica is
// set for Karmada's sum over a pod's containers (RequestFromResources).
func (a amounts) request(container string, cfg config.Config, replica bool) (vgpu.ContainerRequest, bool, error) {
	if cfg.Compat == config.CompatHAMi && (a.hami.any() || (a.gpusSet && !a.memorySet && !a.coresSet)) {
		// HAMi's vocabulary, or only the GPU count both vocabularies share:
		// HAMi's meaning and defaults (hami.go).
		return a.hamiRequest(container, cfg, replica)
	}
	if !a.gpusSet && !a.memorySet && !a.coresSet {
		return vgpu.ContainerRequest{}, false, nil
	}
	if a.gpus == 0 && !a.memorySet && a.cores == 0 {
		return vgpu.ContainerRequest{}, false, nil // an explicit "vgpu: 0" asks for nothing
	}
	if a.gpus > MaxGPUsPerContainer {
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for %d vGPUs; at most %d are supported", container, a.gpus, MaxGPUsPerContainer)
	}
	if a.memoryMiB > MaxMemoryMiBPerContainer {
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for %d MiB of GPU memory; at most %d are supported", container, a.memoryMiB, int64(MaxMemoryMiBPerContainer))
	}
	if a.cores > MaxGPUsPerContainer*vgpu.FullCores {
		return vgpu.ContainerRequest{}, false, fmt.Errorf("container %q asks for %d%% GPU cores; at most %d are supported", container, a.cores, MaxGPUsPerContainer*vgpu.FullCores)
	}
	cr, err := vgpu.NewContainerRequest(container, int(a.gpus), a.memoryMiB, a.memorySet, int(a.cores))
	if err != nil {
		return vgpu.ContainerRequest{}, false, err
	}
	return cr, true, nil
}

// containerAmounts reads a container's Tessera resources. Extended
// resources cannot be overcommitted, so Kubernetes requires request == limit
// and defaults a missing request to the limit; the limit is read first, and
// a request that differs from it is an error rather than a guess.
func containerAmounts(c *corev1.Container, cfg config.Config) (amounts, error) {
	names := cfg.Resources
	fromLimits, err := listAmounts(c.Resources.Limits, cfg, c.Name)
	if err != nil {
		return amounts{}, err
	}
	fromRequests, err := listAmounts(c.Resources.Requests, cfg, c.Name)
	if err != nil {
		return amounts{}, err
	}
	var merged amounts
	if merged.hami, err = mergeHAMi(c.Name, fromLimits.hami, fromRequests.hami); err != nil {
		return amounts{}, err
	}
	if merged.gpus, merged.gpusSet, err = mergeLimit(c.Name, names.VGPU,
		fromLimits.gpus, fromLimits.gpusSet, fromRequests.gpus, fromRequests.gpusSet); err != nil {
		return amounts{}, err
	}
	if merged.memoryMiB, merged.memorySet, err = mergeLimit(c.Name, names.Memory,
		fromLimits.memoryMiB, fromLimits.memorySet, fromRequests.memoryMiB, fromRequests.memorySet); err != nil {
		return amounts{}, err
	}
	if merged.cores, merged.coresSet, err = mergeLimit(c.Name, names.Cores,
		fromLimits.cores, fromLimits.coresSet, fromRequests.cores, fromRequests.coresSet); err != nil {
		return amounts{}, err
	}
	return merged, nil
}

func mergeLimit(container, name string, limit int64, limitSet bool, request int64, requestSet bool) (int64, bool, error) {
	switch {
	case limitSet && requestSet && limit != request:
		return 0, false, fmt.Errorf("container %q: %s request %d differs from its limit %d", container, name, request, limit)
	case limitSet:
		return limit, true, nil
	}
	return request, requestSet, nil
}

// listAmounts reads the Tessera quantities of one resource list. Each must
// be a whole, non-negative number (vGPUs, MiB, percent).
func listAmounts(rl corev1.ResourceList, cfg config.Config, container string) (amounts, error) {
	names := cfg.Resources
	var a amounts
	read := func(name string, dst *int64, set *bool) error {
		q, ok := rl[corev1.ResourceName(name)]
		if !ok {
			return nil
		}
		v, err := wholeNumber(q)
		if err != nil {
			if container == "" {
				return fmt.Errorf("resource %s: %w", name, err)
			}
			return fmt.Errorf("container %q: resource %s: %w", container, name, err)
		}
		*dst, *set = v, true
		return nil
	}
	if err := read(names.VGPU, &a.gpus, &a.gpusSet); err != nil {
		return amounts{}, err
	}
	if err := read(names.Memory, &a.memoryMiB, &a.memorySet); err != nil {
		return amounts{}, err
	}
	if err := read(names.Cores, &a.cores, &a.coresSet); err != nil {
		return amounts{}, err
	}
	if cfg.Compat == config.CompatHAMi {
		for _, q := range a.hami.quantities() {
			if err := read(q.name, &q.slot.v, &q.slot.set); err != nil {
				return amounts{}, err
			}
		}
	}
	return a, nil
}

func wholeNumber(q resource.Quantity) (int64, error) {
	if q.Sign() < 0 {
		return 0, fmt.Errorf("quantity %s is negative", q.String())
	}
	v, ok := q.AsInt64()
	if !ok {
		return 0, fmt.Errorf("quantity %s is not a whole number in range", q.String())
	}
	return v, nil
}
