package region

import (
	"encoding/binary"
	"testing"
)

// testProc is one process record to put in a test region.
type testProc struct {
	pid      int32
	used     []uint64 // per device
	launches []uint64
	lastNs   []uint64
	busyNs   []uint64
}

// testRegion describes a region file for encode.
type testRegion struct {
	limits []uint64 // one per device
	cores  []uint32
	uuids  []string
	procs  []testProc
}

func put32(b []byte, off uintptr, v uint32) { binary.NativeEndian.PutUint32(b[off:], v) }
func put64(b []byte, off uintptr, v uint64) { binary.NativeEndian.PutUint64(b[off:], v) }

// encode lays out a region as the C library would, for decoder tests.
func encode(t testing.TB, r testRegion) []byte {
	t.Helper()
	b := make([]byte, Size)
	put64(b, offMagic, Magic)
	put32(b, offVersion, Version)
	put32(b, offState, stateReady)
	put32(b, offSize, uint32(Size))
	put32(b, offDeviceCount, uint32(len(r.limits)))
	put32(b, offMaxDevices, MaxDevices)
	put32(b, offMaxProcs, MaxProcs)
	for i, limit := range r.limits {
		base := offDevices + uintptr(i)*deviceSize
		put64(b, base+offDevLimit, limit)
		if i < len(r.cores) {
			put32(b, base+offDevCore, r.cores[i])
		}
		if i < len(r.uuids) {
			copy(b[base+offDevUUID:base+offDevUUID+UUIDLen-1], r.uuids[i])
		}
	}
	for slot, p := range r.procs {
		base := offProcs + uintptr(slot)*procSize
		put32(b, base+offProcPID, uint32(p.pid))
		for d := range p.used {
			put64(b, base+offProcUsed+uintptr(d)*8, p.used[d])
		}
		for d := range p.launches {
			put64(b, base+offProcLaunch+uintptr(d)*8, p.launches[d])
		}
		for d := range p.lastNs {
			put64(b, base+offProcLast+uintptr(d)*8, p.lastNs[d])
		}
		for d := range p.busyNs {
			put64(b, base+offProcBusy+uintptr(d)*8, p.busyNs[d])
		}
	}
	return b
}
