package main

import (
	"slices"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// TestHAMiCompatRender: config.compat=hami reaches every component's
// configuration, and kube-scheduler sends HAMi's pods to the extender.
func TestHAMiCompatRender(t *testing.T) {
	r := renderRelease(t, "kube-system", map[string]any{
		"config": map[string]any{"compat": "hami", "hami": map[string]any{"defaultMemory": 2048}},
	})
	cfg := tesseraConfig(t, r)
	if cfg.Compat != config.CompatHAMi || cfg.Resources.VGPU != config.HAMiGPU || cfg.HAMi.DefaultMemory != 2048 || !cfg.Keys().Compat.HAMi {
		t.Errorf("config = %+v", cfg)
	}
	var managed []string
	for _, m := range schedulerConfig(t, r).Extenders[0].ManagedResources {
		managed = append(managed, m.Name)
	}
	want := []string{config.HAMiGPU, cfg.Resources.Memory, cfg.Resources.Cores, config.HAMiMemory, config.HAMiMemoryPercent, config.HAMiCores}
	if !slices.Equal(managed, want) {
		t.Errorf("managed resources = %v, want %v", managed, want)
	}
}
