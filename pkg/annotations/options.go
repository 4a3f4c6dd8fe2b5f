package annotations

import (
	"fmt"
	"strings"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// PodOptions are the placement options a user sets on a pod.
type PodOptions struct {
	Selector vgpu.Selector
	// NodePolicy orders nodes (used by the extender's prioritize).
	NodePolicy vgpu.Policy
	// GPUPolicy orders GPUs on the chosen node.
	GPUPolicy vgpu.Policy
}

// DecodePodOptions reads the pod options from a pod's annotations. List
// values are comma-separated; blanks around items are ignored. Unknown
// policy values are an error that names the annotation.
func DecodePodOptions(keys Keys, annotations map[string]string) (PodOptions, error) {
	var opts PodOptions
	var err error
	if opts.NodePolicy, err = vgpu.ParsePolicy(annotations[keys.NodePolicy]); err != nil {
		return PodOptions{}, fmt.Errorf("annotation %s: %w", keys.NodePolicy, err)
	}
	if opts.GPUPolicy, err = vgpu.ParsePolicy(annotations[keys.GPUPolicy]); err != nil {
		return PodOptions{}, fmt.Errorf("annotation %s: %w", keys.GPUPolicy, err)
	}
	lists := []struct {
		key string
		dst *[]string
	}{
		{keys.GPUModelInclude, &opts.Selector.IncludeModels},
		{keys.GPUModelExclude, &opts.Selector.ExcludeModels},
		{keys.GPUUUIDInclude, &opts.Selector.IncludeUUIDs},
		{keys.GPUUUIDExclude, &opts.Selector.ExcludeUUIDs},
	}
	for _, l := range lists {
		raw, ok := annotations[l.key]
		if !ok {
			continue
		}
		if *l.dst, err = splitList(raw); err != nil {
			return PodOptions{}, fmt.Errorf("annotation %s: %w", l.key, err)
		}
	}
	return opts, nil
}

func splitList(raw string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(raw, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.ContainsFunc(item, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, fmt.Errorf("item %q has control characters", item)
		}
		out = append(out, item)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("list %q names nothing", raw)
	}
	return out, nil
}
