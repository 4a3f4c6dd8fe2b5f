package annotations

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// MaxUsageContainers bounds a usage report: far more containers than one
// node runs, small enough that the annotation stays well under the API
// server's limits.
const MaxUsageContainers = 1024

// maxContainerUsedMiB bounds one container's reported use: every GPU of a
// node at its largest possible memory.
const maxContainerUsedMiB = maxGPUMemoryMiB * maxSlots

// Usage is what the containers on a node really use of their GPUs, as
// the node agent last read it from their usage regions (the Node's
// gpu-usage annotation). Prometheus has the same figures per scrape; this
// copy lets a reader of the API (the fleet view, through Karmada) show
// observed use without reaching the node.
type Usage struct {
	Version string `json:"version"`
	// ObservedAt is when the regions were read.
	ObservedAt time.Time        `json:"observedAt"`
	Containers []ContainerUsage `json:"containers"`
}

// ContainerUsage is one container's observed use, summed over its GPUs.
type ContainerUsage struct {
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	// MemoryUsedMiB is the device memory its processes hold (rounded up).
	MemoryUsedMiB int64 `json:"memoryUsedMiB"`
}

// EncodeUsage renders a usage annotation value; containers are sorted so
// that equal reports encode equally.
func EncodeUsage(u Usage) (string, error) {
	u.Version = Version
	u.Containers = slices.Clone(u.Containers)
	slices.SortFunc(u.Containers, func(a, b ContainerUsage) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Container, b.Container))
	})
	if err := checkUsage(u); err != nil {
		return "", fmt.Errorf("encode usage: %w", err)
	}
	return encode("usage", u)
}

// DecodeUsage parses a usage annotation value strictly.
func DecodeUsage(s string) (Usage, error) {
	var u Usage
	if err := decode("usage", s, &u, func() string { return u.Version }); err != nil {
		return Usage{}, err
	}
	if err := checkUsage(u); err != nil {
		return Usage{}, fmt.Errorf("decode usage: %w", err)
	}
	return u, nil
}

func checkUsage(u Usage) error {
	if len(u.Containers) > MaxUsageContainers {
		return fmt.Errorf("%d containers; at most %d", len(u.Containers), MaxUsageContainers)
	}
	seen := make(map[ContainerUsage]bool, len(u.Containers))
	for _, c := range u.Containers {
		switch {
		case len(validation.IsDNS1123Label(c.Namespace)) > 0:
			return fmt.Errorf("namespace %q is not a DNS label", c.Namespace)
		case len(validation.IsDNS1123Subdomain(c.Pod)) > 0:
			return fmt.Errorf("pod name %q is not a DNS subdomain", c.Pod)
		case len(validation.IsDNS1123Label(c.Container)) > 0:
			return fmt.Errorf("container name %q is not a DNS label", c.Container)
		case c.MemoryUsedMiB < 0 || c.MemoryUsedMiB > maxContainerUsedMiB:
			return fmt.Errorf("container %s/%s/%s uses %d MiB: out of range", c.Namespace, c.Pod, c.Container, c.MemoryUsedMiB)
		}
		key := ContainerUsage{Namespace: c.Namespace, Pod: c.Pod, Container: c.Container}
		if seen[key] {
			return fmt.Errorf("container %s/%s/%s is reported twice", c.Namespace, c.Pod, c.Container)
		}
		seen[key] = true
	}
	return nil
}
