package vgpu

import (
	"reflect"
	"strings"
	"testing"
)

func grant(uuid string, mem int64, cores int) DeviceGrant {
	return DeviceGrant{UUID: uuid, MemoryMiB: mem, Cores: cores}
}

func placed(name string, grants ...DeviceGrant) Placement {
	return Placement{Containers: []ContainerPlacement{{Name: name, Devices: grants}}}
}

func TestApplyAndRelease(t *testing.T) {
	devices := []DeviceState{dev(0, used(1, 1000, 10)), dev(1)}
	p := Placement{Containers: []ContainerPlacement{
		{Name: "a", Devices: []DeviceGrant{grant("GPU-0", 2000, 20), grant("GPU-1", 2000, 20)}},
		{Name: "b", Devices: []DeviceGrant{grant("GPU-0", 500, 0)}},
	}}
	before := cloneDevices(devices)
	after, err := Apply(devices, p)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if want := (Usage{Slots: 3, MemoryMiB: 3500, Cores: 30}); after[0].Used != want {
		t.Errorf("GPU-0 uses %+v after Apply, want %+v", after[0].Used, want)
	}
	if want := (Usage{Slots: 1, MemoryMiB: 2000, Cores: 20}); after[1].Used != want {
		t.Errorf("GPU-1 uses %+v after Apply, want %+v", after[1].Used, want)
	}
	if !reflect.DeepEqual(devices, before) {
		t.Error("Apply modified its input")
	}
	back, err := Release(after, p)
	if err != nil || !reflect.DeepEqual(back, devices) {
		t.Errorf("Release(Apply(p)) = %+v, %v; want the original devices", back, err)
	}
}

func TestApplyRejects(t *testing.T) {
	full := []DeviceState{dev(0, slots(1), memory(1000))}
	tests := []struct {
		name    string
		devices []DeviceState
		p       Placement
		want    string
	}{
		{"an unknown GPU", nodeOf(1), placed("c", grant("GPU-9", 1, 0)), "granted GPU GPU-9, which the node does not list"},
		{"a GPU given twice to one container", nodeOf(1), placed("c", grant("GPU-0", 1, 0), grant("GPU-0", 1, 0)), "granted GPU GPU-0 twice"},
		{"a grant without memory", nodeOf(1), placed("c", grant("GPU-0", 0, 0)), "granted 0 MiB"},
		{"cores over 100", nodeOf(1), placed("c", grant("GPU-0", 1, 101)), "granted 101% cores"},
		{"too much memory", full, placed("c", grant("GPU-0", 1001, 0)), "past its capacity: 1 of 1 slots, 1001 of 1000 MiB"},
		{"too many slots", []DeviceState{dev(0, slots(1), used(1, 0, 0))}, placed("c", grant("GPU-0", 1, 0)), "2 of 1 slots"},
		{"too many cores", []DeviceState{dev(0, used(1, 0, 90))}, placed("c", grant("GPU-0", 1, 20)), "110% of 100% cores"},
		{"a node listing a GPU twice", []DeviceState{dev(0), dev(0)}, placed("c", grant("GPU-0", 1, 0)), "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneDevices(tt.devices)
			out, err := Apply(tt.devices, tt.p)
			if err == nil || out != nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply = %+v, %v; want an error containing %q", out, err, tt.want)
			}
			if !reflect.DeepEqual(tt.devices, before) {
				t.Error("Apply modified its input")
			}
		})
	}
}

func TestReleaseRejects(t *testing.T) {
	tests := []struct {
		name    string
		devices []DeviceState
		p       Placement
		want    string
	}{
		{"an unknown GPU", nodeOf(1), placed("c", grant("GPU-9", 1, 0)), "which the node does not list"},
		{"more than was applied", []DeviceState{dev(0, used(1, 500, 0))}, placed("c", grant("GPU-0", 1000, 0)), "releases more of GPU GPU-0 than is in use"},
		{"a slot that was never taken", nodeOf(1), placed("c", grant("GPU-0", 1, 0)), "-1 slots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Release(tt.devices, tt.p)
			if err == nil || out != nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Release = %+v, %v; want an error containing %q", out, err, tt.want)
			}
		})
	}
}

// TestApplyUncappedOnOvercommittedCores: a container without a core cap
// takes no cores, so Apply accepts it on a GPU whose cores are already
// overcommitted, as Place does.
func TestApplyUncappedOnOvercommittedCores(t *testing.T) {
	devices := []DeviceState{dev(0, used(1, 0, 150))}
	p, err := Place(devices, pod(Binpack, ctr("c", 1, 1000, 0)))
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	if _, err := Apply(devices, p); err != nil {
		t.Errorf("Apply: %v", err)
	}
}
