package config

import (
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that whatever it
// accepts is a configuration every component can use: it validates again and
// yields annotation keys (Keys panics on an unvalidated prefix).
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"null",
		"node: {splitCount: 4}",
		"resources: {vgpu: example.com/gpu, memory: example.com/mem, cores: example.com/cores}",
		`{"annotationPrefix": "example.com", "node": {"memoryScaling": 2.5}}`,
		"node: {gpuBackend: mock, mock: {machine: dgxh100}}",
		"node: {gpuBackend: mock, mock: {gpus: [{model: A30, count: 2}]}}",
		"node: {healthRecovery: 1m30s, extraIgnoredXids: [79]}",
		"node: {memoryScaling: 1e308}",
		"node: {splitCount: 9223372036854775807}",
		"annotationPrefix: \"\\u0000\"",
		"- a\n- b",
		"&a [*a]",
		"compat: hami",
		"compat: hami\nhami: {defaultMemory: 4096, defaultCores: 20, gpuSchedulerPolicy: binpack}",
		"compat: hami\nresources: {vgpu: tessera.io/vgpu, memory: nvidia.com/gpumem}",
		"compat: HAMi\nhami: {defaultCores: 101, nodeSchedulerPolicy: fastest}",
		"hami: {defaultMemory: 1}",
		"compat: hami\nhami: {defaultGPUNum: 0}",
		"compat: hami\nhami: {defaultGPUNum: 4096}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("Parse(%q) returned an empty error", data)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse(%q) accepted a config that does not validate: %v", data, err)
		}
		_ = c.Keys()
	})
}
