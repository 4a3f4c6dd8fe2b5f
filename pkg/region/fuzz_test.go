package region

import (
	"testing"
)

// FuzzDecodeRegion feeds the decoder arbitrary files: it must return an
// error or a snapshot that respects the layout's bounds, and never panic.
func FuzzDecodeRegion(f *testing.F) {
	valid := encode(f, testRegion{
		limits: []uint64{mib, 2 * mib},
		uuids:  []string{"GPU-1"},
		procs:  []testProc{{pid: 7, used: []uint64{mib, 0}, launches: []uint64{1, 2}, busyNs: []uint64{3e6, 1 << 63}}},
	})
	f.Add(valid)
	f.Add(valid[:Size/2])
	f.Add([]byte{})
	f.Add(make([]byte, Size))
	bad := append([]byte(nil), valid...)
	put32(bad, offVersion, 99)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Decode(b)
		if err != nil {
			if s != nil {
				t.Fatalf("error %v with a snapshot", err)
			}
			return
		}
		if len(s.Devices) > MaxDevices {
			t.Fatalf("%d devices", len(s.Devices))
		}
		for _, d := range s.Devices {
			if len(d.Processes) > MaxProcs || len(d.UUID) >= UUIDLen {
				t.Fatalf("device %d: %d processes, uuid %q", d.Index, len(d.Processes), d.UUID)
			}
			// A metrics counter: never negative, never NaN, whatever the file holds.
			if !(d.BusySeconds >= 0) {
				t.Fatalf("device %d: busy %v seconds", d.Index, d.BusySeconds)
			}
		}
	})
}
