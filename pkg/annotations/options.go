package annotations

import (
	"cmp"
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
//
// Under a compatibility profile (keys.Compat) the other scheduler's keys
// are read too, each as the Tessera key of the same meaning, and an error
// names the key of each option Tessera does not support.
func DecodePodOptions(keys Keys, annotations map[string]string) (PodOptions, error) {
	var opts PodOptions
	var err error
	// renamed maps a Tessera key to the HAMi key the pod used for it, so
	// that an error names what the pod says.
	var renamed map[string]string
	if keys.Compat.HAMi {
		if annotations, renamed, err = keys.withHAMi(annotations); err != nil {
			return PodOptions{}, err
		}
	}
	named := func(key string) string { return cmp.Or(renamed[key], key) }
	policies := []struct {
		key      string
		fallback vgpu.Policy
		dst      *vgpu.Policy
	}{
		{keys.NodePolicy, keys.Compat.NodePolicy, &opts.NodePolicy},
		{keys.GPUPolicy, keys.Compat.GPUPolicy, &opts.GPUPolicy},
	}
	for _, p := range policies {
		// An empty value is the default policy, as a missing one is.
		raw := annotations[p.key]
		if strings.TrimSpace(raw) == "" {
			raw = string(p.fallback)
		}
		if *p.dst, err = vgpu.ParsePolicy(raw); err != nil {
			return PodOptions{}, fmt.Errorf("annotation %s: %w", named(p.key), err)
		}
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
			return PodOptions{}, fmt.Errorf("annotation %s: %w", named(l.key), err)
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
