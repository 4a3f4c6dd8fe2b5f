// Package hookenv is the contract between the device plugin, which sets a
// container's environment, and the CUDA interception library, which reads it.
//
// The C side spells the same names in cuda-hook/include/tessera_env.h; a cgo
// test in this package fails if the two ever disagree, so the contract lives
// in exactly one pair of files that are checked against each other.
package hookenv

import (
	"fmt"
	"strconv"
	"time"
)

const (
	// MemoryLimitPrefix + "<ordinal>" is the memory limit in MiB of the
	// container's CUDA device with that ordinal (0-based, in the order of
	// NVIDIA_VISIBLE_DEVICES).
	MemoryLimitPrefix = "TESSERA_MEMORY_LIMIT_MIB_"
	// CoreLimitPrefix + "<ordinal>" is the share of that device's SMs, in
	// percent (1-100). Absent means no core cap.
	CoreLimitPrefix = "TESSERA_CORE_LIMIT_"
	// DeviceUUIDPrefix + "<ordinal>" is that device's UUID, so that NVML
	// handles (which name devices by UUID, not ordinal) map to a limit.
	DeviceUUIDPrefix = "TESSERA_DEVICE_UUID_"
	// DeviceCount is the number of devices the container was given.
	DeviceCount = "TESSERA_DEVICE_COUNT"
	// RegionFile is the path, inside the container, of the shared usage
	// region that every process of the container maps.
	RegionFile = "TESSERA_REGION_FILE"
	// LimitsFile is the path, inside the container, of the limits file
	// (limits.go). When it is set the library takes memory and core limits
	// from that file only, never from the variables above: the device plugin
	// cannot know them at Allocate, where it renders the environment.
	LimitsFile = "TESSERA_LIMITS_FILE"
	// AllocationID is the ID the limits file must carry to be this
	// allocation's.
	AllocationID = "TESSERA_ALLOCATION_ID"
	// LimitsWaitMS is how long, in milliseconds, the library waits at CUDA
	// initialisation for the limits file to appear (or to carry this
	// allocation's ID). When it runs out, CUDA calls fail; they never run
	// unlimited.
	LimitsWaitMS = "TESSERA_LIMITS_WAIT_MS"
	// LimitsWaitMaxMS bounds LimitsWaitMS (10 minutes).
	LimitsWaitMaxMS = 600000
)

// MemoryLimitVar names the memory-limit variable of device ordinal i.
func MemoryLimitVar(i int) string { return MemoryLimitPrefix + strconv.Itoa(i) }

// CoreLimitVar names the core-limit variable of device ordinal i.
func CoreLimitVar(i int) string { return CoreLimitPrefix + strconv.Itoa(i) }

// DeviceUUIDVar names the UUID variable of device ordinal i.
func DeviceUUIDVar(i int) string { return DeviceUUIDPrefix + strconv.Itoa(i) }

// DeviceLimit is what one device of a container may use.
type DeviceLimit struct {
	UUID      string
	MemoryMiB int64
	// CorePercent is 0 when the container has no core cap on this device.
	CorePercent int
}

// Env renders the limits of a container's devices, in ordinal order, and the
// region path as environment variables.
func Env(devices []DeviceLimit, regionFile string) (map[string]string, error) {
	env := make(map[string]string, 2+3*len(devices))
	env[DeviceCount] = strconv.Itoa(len(devices))
	env[RegionFile] = regionFile
	for i, d := range devices {
		if d.MemoryMiB <= 0 {
			return nil, fmt.Errorf("device %d (%s): memory limit %d MiB is not positive", i, d.UUID, d.MemoryMiB)
		}
		if d.CorePercent < 0 || d.CorePercent > 100 {
			return nil, fmt.Errorf("device %d (%s): core limit %d%% is outside 0-100", i, d.UUID, d.CorePercent)
		}
		env[DeviceUUIDVar(i)] = d.UUID
		env[MemoryLimitVar(i)] = strconv.FormatInt(d.MemoryMiB, 10)
		if d.CorePercent > 0 {
			env[CoreLimitVar(i)] = strconv.Itoa(d.CorePercent)
		}
	}
	return env, nil
}

// AllocationEnv renders what Allocate decides from the slot IDs alone: the
// devices' UUIDs in ordinal order, the region path, and where (and how long
// to wait) for the limits file with this allocation's ID.
func AllocationEnv(uuids []string, id, regionFile, limitsFile string, wait time.Duration) (map[string]string, error) {
	if len(uuids) == 0 || len(uuids) > LimitsMaxDevices {
		return nil, fmt.Errorf("%d devices, want 1-%d", len(uuids), LimitsMaxDevices)
	}
	if !ValidAllocationID(id) {
		return nil, fmt.Errorf("allocation ID %q is not 1-%d characters [a-z0-9]", id, LimitsMaxIDLen)
	}
	ms := wait.Milliseconds()
	if ms < 0 || ms > LimitsWaitMaxMS {
		return nil, fmt.Errorf("limits wait %v is outside 0-%dms", wait, LimitsWaitMaxMS)
	}
	env := map[string]string{
		DeviceCount:  strconv.Itoa(len(uuids)),
		RegionFile:   regionFile,
		LimitsFile:   limitsFile,
		AllocationID: id,
		LimitsWaitMS: strconv.FormatInt(ms, 10),
	}
	for i, u := range uuids {
		if !validUUID(u) {
			return nil, fmt.Errorf("device %d: UUID %q is not 1-%d characters [A-Za-z0-9-]", i, u, LimitsMaxUUIDLen)
		}
		env[DeviceUUIDVar(i)] = u
	}
	return env, nil
}
