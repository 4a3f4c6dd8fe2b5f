// Package cabi is the interception library's C headers as Go sees them
// through cgo: the environment contract (include/tessera_env.h) and the
// layout of the shared usage region (include/tessera_region.h).
//
// It exists for tests. Go does not allow cgo in _test.go files, so the tests
// that hold Go code to the C definitions (pkg/hookenv, pkg/region) import
// this package instead. Production code does not import it, and so needs
// neither cgo nor a C compiler.
package cabi

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#include <stddef.h>
#include "tessera_env.h"
#include "tessera_region.h"

static size_t region_size(void) { return sizeof(struct tessera_region); }
static size_t device_size(void) { return sizeof(struct tessera_region_device); }
static size_t proc_size(void) { return sizeof(struct tessera_region_proc); }

// Offsets in the order of regionFields(), deviceFields() and procFields().
static void region_offsets(size_t *o)
{
    o[0] = offsetof(struct tessera_region, magic);
    o[1] = offsetof(struct tessera_region, version);
    o[2] = offsetof(struct tessera_region, state);
    o[3] = offsetof(struct tessera_region, size);
    o[4] = offsetof(struct tessera_region, device_count);
    o[5] = offsetof(struct tessera_region, max_devices);
    o[6] = offsetof(struct tessera_region, max_procs);
    o[7] = offsetof(struct tessera_region, proc_hwm);
    o[8] = offsetof(struct tessera_region, init_pid);
    o[9] = offsetof(struct tessera_region, devices);
    o[10] = offsetof(struct tessera_region, procs);
}

static void device_offsets(size_t *o)
{
    o[0] = offsetof(struct tessera_region_device, limit_bytes);
    o[1] = offsetof(struct tessera_region_device, core_limit_pct);
    o[2] = offsetof(struct tessera_region_device, pace_tat_ns);
    o[3] = offsetof(struct tessera_region_device, uuid);
}

static void proc_offsets(size_t *o)
{
    o[0] = offsetof(struct tessera_region_proc, pid);
    o[1] = offsetof(struct tessera_region_proc, start_time);
    o[2] = offsetof(struct tessera_region_proc, used_bytes);
    o[3] = offsetof(struct tessera_region_proc, pending_bytes);
    o[4] = offsetof(struct tessera_region_proc, launches);
    o[5] = offsetof(struct tessera_region_proc, last_launch_ns);
    o[6] = offsetof(struct tessera_region_proc, busy_ns);
}
*/
import "C"

import "unsafe"

// The environment contract, from tessera_env.h.
const (
	EnvDeviceCount          = C.TESSERA_ENV_DEVICE_COUNT
	EnvMemoryLimitPrefix    = C.TESSERA_ENV_MEMORY_LIMIT_PREFIX
	EnvCoreLimitPrefix      = C.TESSERA_ENV_CORE_LIMIT_PREFIX
	EnvDeviceUUIDPrefix     = C.TESSERA_ENV_DEVICE_UUID_PREFIX
	EnvRegionFile           = C.TESSERA_ENV_REGION_FILE
	EnvCoreLimitMin         = C.TESSERA_ENV_CORE_LIMIT_MIN
	EnvCoreLimitMax         = C.TESSERA_ENV_CORE_LIMIT_MAX
	EnvLimitsFile           = C.TESSERA_ENV_LIMITS_FILE
	EnvAllocationID         = C.TESSERA_ENV_ALLOCATION_ID
	EnvLimitsWaitMS         = C.TESSERA_ENV_LIMITS_WAIT_MS
	EnvLimitsWaitMaxMS      = C.TESSERA_ENV_LIMITS_WAIT_MAX_MS
	LimitsMagic             = C.TESSERA_LIMITS_MAGIC
	LimitsMaxBytes          = C.TESSERA_LIMITS_MAX_BYTES
	LimitsMaxIDLen          = C.TESSERA_LIMITS_MAX_ID_LEN
	LimitsMaxUUIDLen        = C.TESSERA_LIMITS_MAX_UUID_LEN
	LimitsMaxReasonLen      = C.TESSERA_LIMITS_MAX_REASON_LEN
	LimitsMaxMemoryMiB      = C.TESSERA_LIMITS_MAX_MEMORY_MIB
	RegionMagic             = uint64(C.TESSERA_REGION_MAGIC)
	RegionVersion           = C.TESSERA_REGION_VERSION
	RegionMaxDevices        = C.TESSERA_REGION_MAX_DEVICES
	RegionMaxProcs          = C.TESSERA_REGION_MAX_PROCS
	RegionUUIDLen           = C.TESSERA_REGION_UUID_LEN
	RegionStateEmpty        = C.TESSERA_REGION_EMPTY
	RegionStateInitialising = C.TESSERA_REGION_INITIALISING
	RegionStateReady        = C.TESSERA_REGION_READY
)

// Layout is one C struct as the C compiler lays it out.
type Layout struct {
	Size    uintptr
	Offsets map[string]uintptr
}

// Field names, in the order the C offset functions above fill them.
func regionFields() []string {
	return []string{"magic", "version", "state", "size", "device_count", "max_devices",
		"max_procs", "proc_hwm", "init_pid", "devices", "procs"}
}

func deviceFields() []string {
	return []string{"limit_bytes", "core_limit_pct", "pace_tat_ns", "uuid"}
}

func procFields() []string {
	return []string{"pid", "start_time", "used_bytes", "pending_bytes", "launches", "last_launch_ns",
		"busy_ns"}
}

func layout(size C.size_t, names []string, fill func(*C.size_t)) Layout {
	offs := make([]C.size_t, len(names))
	fill((*C.size_t)(unsafe.Pointer(&offs[0])))
	l := Layout{Size: uintptr(size), Offsets: make(map[string]uintptr, len(names))}
	for i, n := range names {
		l.Offsets[n] = uintptr(offs[i])
	}
	return l
}

// RegionLayout is struct tessera_region.
func RegionLayout() Layout {
	return layout(C.region_size(), regionFields(), func(o *C.size_t) { C.region_offsets(o) })
}

// DeviceLayout is struct tessera_region_device.
func DeviceLayout() Layout {
	return layout(C.device_size(), deviceFields(), func(o *C.size_t) { C.device_offsets(o) })
}

// ProcLayout is struct tessera_region_proc.
func ProcLayout() Layout {
	return layout(C.proc_size(), procFields(), func(o *C.size_t) { C.proc_offsets(o) })
}
