package config

import (
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestCompatHAMi(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// wantErr lists substrings that must all be in the error; nil means success.
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "compat: hami advertises nvidia.com/gpu and keeps Tessera's memory and cores names",
			in:   "compat: hami",
			check: func(t *testing.T, c Config) {
				if c.Resources.VGPU != HAMiGPU || c.Resources.Memory != "tessera.io/vgpu-memory" {
					t.Errorf("resources = %+v", c.Resources)
				}
				if c.HAMi != (HAMiDefaults{DefaultGPUNum: 1, NodeSchedulerPolicy: vgpu.Binpack, GPUSchedulerPolicy: vgpu.Spread}) {
					t.Errorf("hami = %+v, want HAMi's chart defaults", c.HAMi)
				}
				if k := c.Keys(); !k.Compat.HAMi || k.Compat.GPUPolicy != vgpu.Spread {
					t.Errorf("keys.Compat = %+v", k.Compat)
				}
			},
		},
		{
			name: "HAMi's defaults can be changed as in HAMi's chart",
			in:   "compat: hami\nhami: {defaultMemory: 4096, defaultCores: 20, defaultGPUNum: 2, nodeSchedulerPolicy: spread, gpuSchedulerPolicy: binpack}",
			check: func(t *testing.T, c Config) {
				if c.HAMi.DefaultMemory != 4096 || c.HAMi.DefaultCores != 20 || c.HAMi.DefaultGPUNum != 2 || c.HAMi.NodeSchedulerPolicy != vgpu.Spread {
					t.Errorf("hami = %+v", c.HAMi)
				}
			},
		},
		{
			name:    "another vgpu name cannot serve HAMi's pods",
			in:      "compat: hami\nresources: {vgpu: example.com/gpu}",
			wantErr: []string{"resources.vgpu", "nvidia.com/gpu"},
		},
		{
			name:    "HAMi's names cannot carry Tessera's meaning",
			in:      "compat: hami\nresources: {memory: nvidia.com/gpumem, cores: nvidia.com/gpucores}",
			wantErr: []string{"resources.memory", "resources.cores", "HAMi's names"},
		},
		{
			name: "defaultGPUNum 0 adds no GPU, as in HAMi",
			in:   "compat: hami\nhami: {defaultGPUNum: 0}",
			check: func(t *testing.T, c Config) {
				if c.HAMi.DefaultGPUNum != 0 {
					t.Errorf("hami = %+v", c.HAMi)
				}
			},
		},
		{
			name:    "bad defaults, all reported",
			in:      "compat: hami\nhami: {defaultMemory: -1, defaultCores: 101, defaultGPUNum: -1, gpuSchedulerPolicy: topology-aware}",
			wantErr: []string{"hami.defaultMemory", "hami.defaultCores", "hami.defaultGPUNum", "hami.gpuSchedulerPolicy"},
		},
		{
			name:    "defaultGPUNum above what one container may ask for",
			in:      "compat: hami\nhami: {defaultGPUNum: 1025}",
			wantErr: []string{"hami.defaultGPUNum: 1025 is outside 0-1024"},
		},
		{
			name:    "unknown profile",
			in:      "compat: volcano",
			wantErr: []string{`compat: "volcano"`},
		},
		{
			name:    "HAMi settings without the profile would be ignored",
			in:      "hami: {defaultMemory: 1024}",
			wantErr: []string{"hami: set, but compat is not"},
		},
		{
			name:    "unknown fields in the hami block",
			in:      "compat: hami\nhami: {defaultGPUCount: 1}",
			wantErr: []string{"defaultGPUCount"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("accepted %q", tt.in)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
