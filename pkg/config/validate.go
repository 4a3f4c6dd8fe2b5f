package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// MaxSplitCount bounds the slots per GPU: beyond it the kubelet's device
// list (and ListAndWatch messages) grow without any scheduling benefit.
const MaxSplitCount = 256

// MaxMockGPUs bounds a mock node's GPUs: the mock builds every device in
// memory, so a typo such as "count: 1000000000" must be an error, not an
// agent that runs out of memory.
const MaxMockGPUs = 64

// Validate reports every problem in the configuration at once.
func (c Config) Validate() error {
	var errs []error
	// A slice, not a map: the errors must come out in the same order every
	// time, and a duplicate is reported on the later field of the file.
	names := []struct{ field, name string }{
		{"vgpu", c.Resources.VGPU}, {"memory", c.Resources.Memory}, {"cores", c.Resources.Cores},
	}
	seen := map[string]bool{}
	for _, n := range names {
		if err := validateResourceName(n.name); err != nil {
			errs = append(errs, fmt.Errorf("resources.%s: %w", n.field, err))
		}
		if seen[n.name] {
			errs = append(errs, fmt.Errorf("resources.%s: %q is used twice", n.field, n.name))
		}
		seen[n.name] = true
	}
	if _, err := annotations.NewKeys(c.AnnotationPrefix); err != nil {
		errs = append(errs, fmt.Errorf("annotationPrefix: %w", err))
	}
	errs = append(errs, c.Node.validate()...)
	errs = append(errs, c.validateCompat()...)
	return errors.Join(errs...)
}

func validateResourceName(name string) error {
	// Extended resources must be domain-qualified and outside kubernetes.io.
	if errs := validation.IsQualifiedName(name); len(errs) > 0 {
		return fmt.Errorf("%q: %s", name, strings.Join(errs, "; "))
	}
	domain, _, ok := strings.Cut(name, "/")
	if !ok || domain == "kubernetes.io" || strings.HasSuffix(domain, ".kubernetes.io") {
		return fmt.Errorf("%q is not an extended resource name (want <domain>/<name> outside kubernetes.io)", name)
	}
	return nil
}

func (n NodeAgent) validate() []error {
	var errs []error
	if n.SplitCount < 1 || n.SplitCount > MaxSplitCount {
		errs = append(errs, fmt.Errorf("node.splitCount: %d is outside 1-%d", n.SplitCount, MaxSplitCount))
	}
	if math.IsNaN(n.MemoryScaling) || n.MemoryScaling <= 0 || n.MemoryScaling > 10 {
		errs = append(errs, fmt.Errorf("node.memoryScaling: %v is outside (0, 10]", n.MemoryScaling))
	}
	switch n.GPUBackend {
	case BackendNVML:
	case BackendMock:
		errs = append(errs, n.Mock.validate()...)
	default:
		errs = append(errs, fmt.Errorf("node.gpuBackend: %q is neither %q nor %q", n.GPUBackend, BackendNVML, BackendMock))
	}
	paths := []struct{ field, path string }{
		{"devicePluginDir", n.DevicePluginDir}, {"stateDir", n.StateDir}, {"hookLibrary", n.HookLibrary},
		{"podResourcesSocket", n.PodResourcesSocket},
	}
	for _, p := range paths {
		if !strings.HasPrefix(p.path, "/") {
			errs = append(errs, fmt.Errorf("node.%s: %q is not an absolute path", p.field, p.path))
		}
	}
	if d := n.LimitsWait.Duration; d < 0 || d > 10*time.Minute {
		errs = append(errs, fmt.Errorf("node.limitsWait: %v is outside 0-10m", d))
	}
	if n.HealthRecovery.Duration < 0 {
		errs = append(errs, fmt.Errorf("node.healthRecovery: %v is negative", n.HealthRecovery.Duration))
	}
	return errs
}

func (m MockNode) validate() []error {
	switch {
	case m.Machine != "" && len(m.GPUs) > 0:
		return []error{errors.New("node.mock: set machine or gpus, not both")}
	case m.Machine == "" && len(m.GPUs) == 0:
		return []error{errors.New("node.mock: set machine (dgxa100, dgxh100, dgxh200, dgxb200) or gpus")}
	}
	var errs []error
	total := 0
	for i, g := range m.GPUs {
		if g.Model == "" || g.Count < 1 || g.Count > MaxMockGPUs {
			errs = append(errs, fmt.Errorf("node.mock.gpus[%d]: model %q count %d (want a model and a count of 1-%d)", i, g.Model, g.Count, MaxMockGPUs))
			continue
		}
		total += g.Count
	}
	if total > MaxMockGPUs {
		errs = append(errs, fmt.Errorf("node.mock.gpus: %d GPUs in all, more than %d", total, MaxMockGPUs))
	}
	return errs
}
