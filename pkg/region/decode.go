package region

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// ErrNotReady is returned for a region that no process has initialised yet
// (the device plugin creates the file empty).
var ErrNotReady = errors.New("region not initialised yet")

// Snapshot is what a region said at one moment.
type Snapshot struct {
	Devices []Device
}

// Device is one device of the container, in the container's ordinal order.
type Device struct {
	Index int
	UUID  string
	// LimitBytes is the memory limit; 0 means none.
	LimitBytes uint64
	// UsedBytes is the memory the container's processes hold on the device,
	// their contexts' overhead included.
	UsedBytes uint64
	// CoreLimitPercent is the core cap; 0 means none.
	CoreLimitPercent uint32
	// BusySeconds is the GPU time the library attributes to the kernels of
	// the container's live processes on the device, summed over their
	// records. It is only recorded on devices with a core cap (elsewhere
	// launches are not timed, and it stays 0). It grows with use but drops
	// when a process exits or its record is reclaimed.
	BusySeconds float64
	Processes   []Process
}

// Process is one process's use of one device.
type Process struct {
	// PID is in the container's PID namespace.
	PID       int32
	UsedBytes uint64
	// Launches counts the kernel and graph launches the library paced; it
	// only counts on devices with a core cap.
	Launches uint64
	// LastLaunch is the time of the last paced launch, zero if none.
	LastLaunch time.Time
	// BusySeconds is the GPU time of this process's paced launches whose
	// duration the library has settled (measured, or estimated when it
	// could not be measured).
	BusySeconds float64
}

func u32(b []byte, off uintptr) uint32 { return binary.NativeEndian.Uint32(b[off:]) }
func u64(b []byte, off uintptr) uint64 { return binary.NativeEndian.Uint64(b[off:]) }

// Decode reads a region from the bytes of its file. It returns an error,
// never panics, for anything that is not a complete region of this layout.
func Decode(b []byte) (*Snapshot, error) {
	if err := checkHeader(b); err != nil {
		return nil, err
	}
	n := int(u32(b, offDeviceCount))
	s := &Snapshot{Devices: make([]Device, n)}
	for i := range s.Devices {
		s.Devices[i] = decodeDevice(b, i)
	}
	for p := 0; p < MaxProcs; p++ {
		addProcess(s, b, offProcs+uintptr(p)*procSize)
	}
	return s, nil
}

func checkHeader(b []byte) error {
	if len(b) == 0 {
		return fmt.Errorf("region file is empty: %w", ErrNotReady)
	}
	if len(b) < Size {
		return fmt.Errorf("region is %d bytes, want %d", len(b), Size)
	}
	if m := u64(b, offMagic); m != Magic {
		if m == 0 && u32(b, offState) != stateReady {
			return fmt.Errorf("region has no header: %w", ErrNotReady)
		}
		return fmt.Errorf("region has magic %#x, want %#x", m, Magic)
	}
	if v := u32(b, offVersion); v != Version {
		return fmt.Errorf("region has layout version %d, this reader reads version %d only "+
			"(the interception library and the node agent are from releases with different layouts)", v, Version)
	}
	if st := u32(b, offState); st != stateReady {
		return fmt.Errorf("region is in state %d: %w", st, ErrNotReady)
	}
	if sz, d, p := u32(b, offSize), u32(b, offMaxDevices), u32(b, offMaxProcs); sz != uint32(Size) ||
		d != MaxDevices || p != MaxProcs {
		return fmt.Errorf("region declares size %d, %d devices, %d processes; want %d, %d, %d",
			sz, d, p, Size, MaxDevices, MaxProcs)
	}
	if n := u32(b, offDeviceCount); n > MaxDevices {
		return fmt.Errorf("region declares %d devices, at most %d fit", n, MaxDevices)
	}
	return nil
}

func decodeDevice(b []byte, i int) Device {
	base := offDevices + uintptr(i)*deviceSize
	uuid := b[base+offDevUUID : base+offDevUUID+UUIDLen]
	if end := bytes.IndexByte(uuid, 0); end >= 0 {
		uuid = uuid[:end]
	}
	return Device{
		Index:            i,
		UUID:             string(uuid),
		LimitBytes:       u64(b, base+offDevLimit),
		CoreLimitPercent: u32(b, base+offDevCore),
	}
}

// addProcess adds one process record's usage to the devices it uses. A
// record being reclaimed (negative pid) still counts toward the memory
// total, as it does for the library, but is not listed as a process and
// its busy time no longer counts: its owner is gone.
func addProcess(s *Snapshot, b []byte, base uintptr) {
	pid := int32(u32(b, base+offProcPID))
	if pid == 0 {
		return
	}
	for i := range s.Devices {
		used := u64(b, base+offProcUsed+uintptr(i)*8)
		launches := u64(b, base+offProcLaunch+uintptr(i)*8)
		s.Devices[i].UsedBytes += used
		if pid < 0 || (used == 0 && launches == 0) {
			continue
		}
		busy := nsToSeconds(u64(b, base+offProcBusy+uintptr(i)*8))
		s.Devices[i].BusySeconds += busy
		p := Process{PID: pid, UsedBytes: used, Launches: launches, BusySeconds: busy}
		if ns := u64(b, base+offProcLast+uintptr(i)*8); ns != 0 {
			p.LastLaunch = time.Unix(0, int64(ns))
		}
		s.Devices[i].Processes = append(s.Devices[i].Processes, p)
	}
}

// nsToSeconds converts a nanosecond count. Summing the converted values in
// float64 cannot wrap, whatever a corrupt record holds.
func nsToSeconds(ns uint64) float64 { return float64(ns) / 1e9 }
