package vgpu

import "testing"

func TestSelectorAllows(t *testing.T) {
	a100 := GPU{UUID: "GPU-a", Model: "NVIDIA A100-SXM4-80GB"}
	t4 := GPU{UUID: "GPU-t", Model: "Tesla T4"}
	tests := []struct {
		name string
		sel  Selector
		gpu  GPU
		want bool
	}{
		{"empty selector allows everything", Selector{}, t4, true},
		{"model include matches a case-insensitive substring", Selector{IncludeModels: []string{"a100"}}, a100, true},
		{"model include restricts to what it names", Selector{IncludeModels: []string{"a100"}}, t4, false},
		{"any model of the include list matches", Selector{IncludeModels: []string{"H100", "t4"}}, t4, true},
		{"model exclude removes a matching GPU", Selector{ExcludeModels: []string{"SXM4"}}, a100, false},
		{"model exclude keeps other GPUs", Selector{ExcludeModels: []string{"SXM4"}}, t4, true},
		{"exclude wins over include for the same model", Selector{IncludeModels: []string{"A100"}, ExcludeModels: []string{"80gb"}}, a100, false},
		{"UUIDs match exactly", Selector{IncludeUUIDs: []string{"GPU-a"}}, a100, true},
		{"a UUID prefix is no match", Selector{IncludeUUIDs: []string{"GPU"}}, a100, false},
		{"UUIDs are case-sensitive", Selector{IncludeUUIDs: []string{"gpu-a"}}, a100, false},
		{"UUID exclude removes the GPU", Selector{ExcludeUUIDs: []string{"GPU-t"}}, t4, false},
		{"UUID exclude wins over UUID include", Selector{IncludeUUIDs: []string{"GPU-t"}, ExcludeUUIDs: []string{"GPU-t"}}, t4, false},
		{"UUID exclude wins over model include", Selector{IncludeModels: []string{"T4"}, ExcludeUUIDs: []string{"GPU-t"}}, t4, false},
		{"model and UUID includes must both hold", Selector{IncludeModels: []string{"A100"}, IncludeUUIDs: []string{"GPU-t"}}, t4, false},
		{"a blank model exclude excludes nothing", Selector{ExcludeModels: []string{""}}, t4, true},
		{"a blank model include matches nothing", Selector{IncludeModels: []string{""}}, t4, false},
		{"non-ASCII models still fold case", Selector{IncludeModels: []string{"ÄRGER"}}, GPU{Model: "gpu ärger 1"}, true},
		{"a pattern longer than the model never matches", Selector{IncludeModels: []string{"Tesla T4 extra"}}, t4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sel.Allows(tt.gpu); got != tt.want {
				t.Errorf("%+v.Allows(%+v) = %v, want %v", tt.sel, tt.gpu, got, tt.want)
			}
		})
	}
}

func TestContainsFoldDoesNotAllocateForASCII(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		if !containsFold("NVIDIA A100-SXM4-80GB", "sxm4") {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("containsFold allocates %v times per call", allocs)
	}
}
