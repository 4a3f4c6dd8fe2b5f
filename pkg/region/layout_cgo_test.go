//go:build cgo

package region

import (
	"testing"
	"unsafe"

	"github.com/tessera-gpu/tessera/cuda-hook/cabi"
)

// TestLayoutMatchesC holds the Go mirror of the region to the C compiler's
// layout of cuda-hook/include/tessera_region.h, field by field.
func TestLayoutMatchesC(t *testing.T) {
	var r rawRegion
	var d rawDevice
	var p rawProc
	tests := []struct {
		name   string
		goSize uintptr
		c      cabi.Layout
		goOffs map[string]uintptr
	}{
		{"tessera_region", unsafe.Sizeof(r), cabi.RegionLayout(), map[string]uintptr{
			"magic": unsafe.Offsetof(r.Magic), "version": unsafe.Offsetof(r.Version),
			"state": unsafe.Offsetof(r.State), "size": unsafe.Offsetof(r.Size),
			"device_count": unsafe.Offsetof(r.DeviceCount), "max_devices": unsafe.Offsetof(r.MaxDevices),
			"max_procs": unsafe.Offsetof(r.MaxProcs), "proc_hwm": unsafe.Offsetof(r.ProcHWM),
			"init_pid": unsafe.Offsetof(r.InitPID), "devices": unsafe.Offsetof(r.Devices),
			"procs": unsafe.Offsetof(r.Procs),
		}},
		{"tessera_region_device", unsafe.Sizeof(d), cabi.DeviceLayout(), map[string]uintptr{
			"limit_bytes": unsafe.Offsetof(d.LimitBytes), "core_limit_pct": unsafe.Offsetof(d.CoreLimitPct),
			"pace_tat_ns": unsafe.Offsetof(d.PaceTATNs), "uuid": unsafe.Offsetof(d.UUID),
		}},
		{"tessera_region_proc", unsafe.Sizeof(p), cabi.ProcLayout(), map[string]uintptr{
			"pid": unsafe.Offsetof(p.PID), "start_time": unsafe.Offsetof(p.StartTime),
			"used_bytes": unsafe.Offsetof(p.UsedBytes), "pending_bytes": unsafe.Offsetof(p.PendingBytes),
			"launches": unsafe.Offsetof(p.Launches), "last_launch_ns": unsafe.Offsetof(p.LastLaunchNs),
			"busy_ns": unsafe.Offsetof(p.BusyNs),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.goSize != tt.c.Size {
				t.Errorf("size: Go %d, C %d", tt.goSize, tt.c.Size)
			}
			if len(tt.goOffs) != len(tt.c.Offsets) {
				t.Errorf("Go checks %d fields, C lists %d", len(tt.goOffs), len(tt.c.Offsets))
			}
			for field, want := range tt.c.Offsets {
				if got, ok := tt.goOffs[field]; !ok || got != want {
					t.Errorf("%s: Go offset %d (present %v), C offset %d", field, got, ok, want)
				}
			}
		})
	}
}

// TestConstantsMatchC holds the Go constants to the C macros.
func TestConstantsMatchC(t *testing.T) {
	tests := []struct {
		name    string
		goValue uint64
		cValue  uint64
	}{
		{"magic", Magic, cabi.RegionMagic},
		{"version", Version, cabi.RegionVersion},
		{"max devices", MaxDevices, cabi.RegionMaxDevices},
		{"max processes", MaxProcs, cabi.RegionMaxProcs},
		{"uuid length", UUIDLen, cabi.RegionUUIDLen},
		{"state empty", stateEmpty, cabi.RegionStateEmpty},
		{"state initialising", stateInitialising, cabi.RegionStateInitialising},
		{"state ready", stateReady, cabi.RegionStateReady},
	}
	for _, tt := range tests {
		if tt.goValue != tt.cValue {
			t.Errorf("%s: Go %#x, C %#x", tt.name, tt.goValue, tt.cValue)
		}
	}
	if Size%8 != 0 {
		t.Errorf("region size %d is not a whole number of 64-bit words", Size)
	}
}
