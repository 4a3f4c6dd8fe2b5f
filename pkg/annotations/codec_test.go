package annotations

import (
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestInventoryRoundTrip(t *testing.T) {
	in := Inventory{GPUs: []vgpu.GPU{
		{UUID: "GPU-a", Index: 0, Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Slots: 10, Cores: 100, NUMANode: 0, Healthy: true},
		{UUID: "GPU-b", Index: 1, Model: "NVIDIA A100-SXM4-40GB", MemoryMiB: 40960, Slots: 10, Cores: 100, NUMANode: 1, Healthy: false},
	}}
	s, err := EncodeInventory(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeInventory(s)
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	if out.Version != Version || len(out.GPUs) != 2 || out.GPUs[1] != in.GPUs[1] {
		t.Fatalf("round trip changed the inventory: %+v", out)
	}
}

func TestDecodeInventoryErrors(t *testing.T) {
	cases := map[string]struct{ value, want string }{
		"not json":       {`{`, "decode inventory"},
		"unknown field":  {`{"version":"v1","gpus":[],"extra":1}`, "unknown field"},
		"future version": {`{"version":"v2","gpus":[]}`, `version "v2" is not supported`},
		"no version":     {`{"gpus":[]}`, `version "" is not supported`},
		"no uuid":        {`{"version":"v1","gpus":[{"index":0}]}`, "has no UUID"},
		"duplicate":      {`{"version":"v1","gpus":[{"uuid":"a"},{"uuid":"a"}]}`, "listed twice"},
		"negative":       {`{"version":"v1","gpus":[{"uuid":"a","memoryMiB":-1}]}`, "negative capacity"},
		"trailing":       {`{"version":"v1","gpus":[]} {}`, "trailing data"},
		"absurd":         {`{"version":"v1","gpus":[{"uuid":"a","slots":100000}]}`, "beyond any real GPU"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := DecodeInventory(tc.value)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeInventory(%s) = %v, want error containing %q", tc.value, err, tc.want)
			}
		})
	}
}

func validAssignment() Assignment {
	return Assignment{Node: "node-1", Containers: []ContainerAssignment{{
		Name: "train",
		Devices: []AssignedDevice{
			{UUID: "GPU-a", SlotID: vgpu.SlotID("GPU-a", 3), MemoryMiB: 10240, Cores: 30},
			{UUID: "GPU-b", SlotID: vgpu.SlotID("GPU-b", 0), MemoryMiB: 10240},
		},
	}}}
}

func TestAssignmentRoundTrip(t *testing.T) {
	s, err := EncodeAssignment(validAssignment())
	if err != nil {
		t.Fatal(err)
	}
	a, err := DecodeAssignment(s)
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	c, ok := a.Container("train")
	if !ok || len(c.Devices) != 2 || c.Devices[0].Cores != 30 || a.Node != "node-1" {
		t.Fatalf("round trip changed the assignment: %+v", a)
	}
	if _, ok := a.Container("other"); ok {
		t.Fatal("Container found a container that is not there")
	}
}

func TestDecodeAssignmentErrors(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Assignment)
		want   string
	}{
		"no node":        {func(a *Assignment) { a.Node = "" }, "no node"},
		"no devices":     {func(a *Assignment) { a.Containers[0].Devices = nil }, "no devices"},
		"bad slot":       {func(a *Assignment) { a.Containers[0].Devices[0].SlotID = "GPU-a" }, "not of the form"},
		"slot elsewhere": {func(a *Assignment) { a.Containers[0].Devices[0].SlotID = "GPU-b::1" }, "is not on GPU"},
		"same gpu twice": {func(a *Assignment) { a.Containers[0].Devices[1] = a.Containers[0].Devices[0] }, "given twice"},
		"zero memory":    {func(a *Assignment) { a.Containers[0].Devices[0].MemoryMiB = 0 }, "memory 0 MiB"},
		"cores over 100": {func(a *Assignment) { a.Containers[0].Devices[0].Cores = 101 }, "cores 101%"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a := validAssignment()
			tc.mutate(&a)
			s, err := EncodeAssignment(a)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeAssignment(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeAssignment(%s) = %v, want error containing %q", s, err, tc.want)
			}
		})
	}
}

func TestAllocatedSortsAndDeduplicates(t *testing.T) {
	s, err := EncodeAllocated(Allocated{Containers: []string{"b", "a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"version":"v1","containers":["a","b"]}`; s != want {
		t.Fatalf("EncodeAllocated = %s, want %s", s, want)
	}
	a, err := DecodeAllocated(s)
	if err != nil || !a.Has("a") || a.Has("c") {
		t.Fatalf("DecodeAllocated(%s) = %+v, %v", s, a, err)
	}
}
