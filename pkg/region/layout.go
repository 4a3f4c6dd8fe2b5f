// Package region reads the shared usage region that Tessera's CUDA
// interception library keeps for each container: per device, the limits
// the device plugin set and what every process of the container uses.
//
// The layout is defined once, in C (cuda-hook/include/tessera_region.h). The
// Go structs below mirror it so that decoding needs no cgo; a cgo test holds
// their sizes and offsets to the C compiler's. The reader only ever reads:
// the processes of the container own the region.
package region

import "unsafe"

// Constants of the layout; tested against the C header.
const (
	Magic uint64 = 0x5445535345524131 // "TESSERA1"
	// Version 2 added busy_ns to the process record; a reader accepts its
	// own version only.
	Version    = 2
	MaxDevices = 16
	MaxProcs   = 128
	UUIDLen    = 64

	stateEmpty        = 0
	stateInitialising = 1
	stateReady        = 2
)

// rawDevice mirrors struct tessera_region_device.
type rawDevice struct {
	LimitBytes   uint64
	CoreLimitPct uint32
	_            uint32
	PaceTATNs    uint64
	UUID         [UUIDLen]byte
}

// rawProc mirrors struct tessera_region_proc.
type rawProc struct {
	PID          int32
	_            uint32
	StartTime    uint64
	UsedBytes    [MaxDevices]uint64
	PendingBytes [MaxDevices]uint64
	Launches     [MaxDevices]uint64
	LastLaunchNs [MaxDevices]uint64
	BusyNs       [MaxDevices]uint64
}

// rawRegion mirrors struct tessera_region.
type rawRegion struct {
	Magic       uint64
	Version     uint32
	State       uint32
	Size        uint32
	DeviceCount uint32
	MaxDevices  uint32
	MaxProcs    uint32
	ProcHWM     uint32
	InitPID     int32
	_           [4]uint64
	Devices     [MaxDevices]rawDevice
	Procs       [MaxProcs]rawProc
}

// Size is the size in bytes of a region file.
const Size = int(unsafe.Sizeof(rawRegion{}))

// Offsets of the fields the decoder reads.
const (
	offMagic       = unsafe.Offsetof(rawRegion{}.Magic)
	offVersion     = unsafe.Offsetof(rawRegion{}.Version)
	offState       = unsafe.Offsetof(rawRegion{}.State)
	offSize        = unsafe.Offsetof(rawRegion{}.Size)
	offDeviceCount = unsafe.Offsetof(rawRegion{}.DeviceCount)
	offMaxDevices  = unsafe.Offsetof(rawRegion{}.MaxDevices)
	offMaxProcs    = unsafe.Offsetof(rawRegion{}.MaxProcs)
	offDevices     = unsafe.Offsetof(rawRegion{}.Devices)
	offProcs       = unsafe.Offsetof(rawRegion{}.Procs)
	deviceSize     = unsafe.Sizeof(rawDevice{})
	procSize       = unsafe.Sizeof(rawProc{})
	offDevLimit    = unsafe.Offsetof(rawDevice{}.LimitBytes)
	offDevCore     = unsafe.Offsetof(rawDevice{}.CoreLimitPct)
	offDevUUID     = unsafe.Offsetof(rawDevice{}.UUID)
	offProcPID     = unsafe.Offsetof(rawProc{}.PID)
	offProcUsed    = unsafe.Offsetof(rawProc{}.UsedBytes)
	offProcLaunch  = unsafe.Offsetof(rawProc{}.Launches)
	offProcLast    = unsafe.Offsetof(rawProc{}.LastLaunchNs)
	offProcBusy    = unsafe.Offsetof(rawProc{}.BusyNs)
)
