//go:build cgo

package hookenv

import (
	"testing"

	"github.com/tessera-gpu/tessera/cuda-hook/cabi"
)

// TestContractMatchesC holds every name of the contract to the C macro the
// interception library reads (cuda-hook/include/tessera_env.h, through cgo
// in package cabi: Go forbids cgo in test files themselves).
func TestContractMatchesC(t *testing.T) {
	tests := []struct {
		name    string
		goValue string
		cValue  string
	}{
		{"DeviceCount", DeviceCount, cabi.EnvDeviceCount},
		{"MemoryLimitPrefix", MemoryLimitPrefix, cabi.EnvMemoryLimitPrefix},
		{"CoreLimitPrefix", CoreLimitPrefix, cabi.EnvCoreLimitPrefix},
		{"DeviceUUIDPrefix", DeviceUUIDPrefix, cabi.EnvDeviceUUIDPrefix},
		{"RegionFile", RegionFile, cabi.EnvRegionFile},
		{"MemoryLimitVar(3)", MemoryLimitVar(3), cabi.EnvMemoryLimitPrefix + "3"},
		{"CoreLimitVar(12)", CoreLimitVar(12), cabi.EnvCoreLimitPrefix + "12"},
		{"DeviceUUIDVar(0)", DeviceUUIDVar(0), cabi.EnvDeviceUUIDPrefix + "0"},
		{"LimitsFile", LimitsFile, cabi.EnvLimitsFile},
		{"AllocationID", AllocationID, cabi.EnvAllocationID},
		{"LimitsWaitMS", LimitsWaitMS, cabi.EnvLimitsWaitMS},
		{"LimitsMagic", LimitsMagic, cabi.LimitsMagic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.goValue != tt.cValue {
				t.Errorf("Go says %q, C says %q", tt.goValue, tt.cValue)
			}
		})
	}
}

// TestLimitsBoundsMatchC holds the limits file's bounds, which both readers
// enforce, to the C header's: a file one side accepts and the other refuses
// would leave a container without its limits.
func TestLimitsBoundsMatchC(t *testing.T) {
	tests := []struct {
		name    string
		goValue int
		cValue  int
	}{
		{"LimitsWaitMaxMS", LimitsWaitMaxMS, cabi.EnvLimitsWaitMaxMS},
		{"LimitsMaxBytes", LimitsMaxBytes, cabi.LimitsMaxBytes},
		{"LimitsMaxIDLen", LimitsMaxIDLen, cabi.LimitsMaxIDLen},
		{"LimitsMaxUUIDLen", LimitsMaxUUIDLen, cabi.LimitsMaxUUIDLen},
		{"LimitsMaxReasonLen", LimitsMaxReasonLen, cabi.LimitsMaxReasonLen},
		{"LimitsMaxMemoryMiB", LimitsMaxMemoryMiB, cabi.LimitsMaxMemoryMiB},
		{"LimitsMaxDevices", LimitsMaxDevices, cabi.RegionMaxDevices},
	}
	for _, tt := range tests {
		if tt.goValue != tt.cValue {
			t.Errorf("%s: Go says %d, C says %d", tt.name, tt.goValue, tt.cValue)
		}
	}
}

// TestCoreLimitBoundsMatchC checks that what Env accepts as a cap is what the
// library accepts: 1-100 percent, 0 meaning no variable at all.
func TestCoreLimitBoundsMatchC(t *testing.T) {
	tests := []struct {
		percent int
		wantErr bool
		wantVar bool
	}{
		{0, false, false},
		{cabi.EnvCoreLimitMin, false, true},
		{cabi.EnvCoreLimitMax, false, true},
		{cabi.EnvCoreLimitMax + 1, true, false},
		{-1, true, false},
	}
	for _, tt := range tests {
		env, err := Env([]DeviceLimit{{UUID: "GPU-x", MemoryMiB: 1, CorePercent: tt.percent}}, "/r")
		if (err != nil) != tt.wantErr {
			t.Errorf("CorePercent %d: error %v, want error %v", tt.percent, err, tt.wantErr)
			continue
		}
		if _, ok := env[CoreLimitVar(0)]; err == nil && ok != tt.wantVar {
			t.Errorf("CorePercent %d: variable set %v, want %v", tt.percent, ok, tt.wantVar)
		}
	}
}
