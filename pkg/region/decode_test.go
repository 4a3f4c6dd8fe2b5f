package region

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const mib = 1 << 20

func TestDecodeRejects(t *testing.T) {
	valid := encode(t, testRegion{limits: []uint64{mib}})
	tests := []struct {
		name      string
		mutate    func([]byte) []byte
		want      string
		wantReady bool // the error wraps ErrNotReady
	}{
		{"empty file", func(b []byte) []byte { return nil }, "empty", true},
		{"short file", func(b []byte) []byte { return b[:Size-1] }, "bytes, want", false},
		{"zero header", func(b []byte) []byte { return make([]byte, Size) }, "no header", true},
		{"bad magic", func(b []byte) []byte { put64(b, offMagic, 0xdeadbeef); return b }, "magic", false},
		{"future version", func(b []byte) []byte { put32(b, offVersion, 7); return b }, "version 7, this reader reads version 2 only", false},
		{"version 1 (no busy time)", func(b []byte) []byte { put32(b, offVersion, 1); return b }, "version 1, this reader reads version 2 only", false},
		{"initialising", func(b []byte) []byte { put32(b, offState, stateInitialising); return b }, "state 1", true},
		{"wrong size", func(b []byte) []byte { put32(b, offSize, 12); return b }, "declares size", false},
		{"wrong slots", func(b []byte) []byte { put32(b, offMaxProcs, 3); return b }, "declares size", false},
		{"too many devices", func(b []byte) []byte { put32(b, offDeviceCount, MaxDevices+1); return b }, "at most", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(append([]byte(nil), valid...))
			s, err := Decode(b)
			if err == nil || s != nil {
				t.Fatalf("Decode succeeded: %+v", s)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if errors.Is(err, ErrNotReady) != tt.wantReady {
				t.Errorf("error %q: wraps ErrNotReady = %v, want %v", err, !tt.wantReady, tt.wantReady)
			}
		})
	}
}

func TestDecodeSnapshot(t *testing.T) {
	last := time.Unix(1700000000, 5)
	b := encode(t, testRegion{
		limits: []uint64{1024 * mib, 2048 * mib},
		cores:  []uint32{30, 0},
		uuids:  []string{"GPU-aaaa", "GPU-bbbb"},
		procs: []testProc{
			{pid: 100, used: []uint64{300 * mib, 0}, launches: []uint64{7}, lastNs: []uint64{uint64(last.UnixNano())},
				busyNs: []uint64{1_500_000_000}},
			{pid: 0, used: []uint64{0, 0}, busyNs: []uint64{9e9, 9e9}}, // free record: ignored
			{pid: 101, used: []uint64{100 * mib, 50 * mib}, launches: []uint64{2}, busyNs: []uint64{250_000_000}},
			// Being reclaimed: its memory counts, it is not listed, its busy time is gone.
			{pid: -102, used: []uint64{10 * mib, 0}, launches: []uint64{3}, busyNs: []uint64{7e9}},
		},
	})
	s, err := Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"devices", len(s.Devices), 2},
		{"uuid 0", s.Devices[0].UUID, "GPU-aaaa"},
		{"limit 1", s.Devices[1].LimitBytes, uint64(2048 * mib)},
		{"core 0", s.Devices[0].CoreLimitPercent, uint32(30)},
		{"used 0", s.Devices[0].UsedBytes, uint64(410 * mib)},
		{"used 1", s.Devices[1].UsedBytes, uint64(50 * mib)},
		{"processes on 0", len(s.Devices[0].Processes), 2},
		{"processes on 1", len(s.Devices[1].Processes), 1},
		{"pid", s.Devices[0].Processes[0].PID, int32(100)},
		{"launches", s.Devices[0].Processes[0].Launches, uint64(7)},
		{"last launch", s.Devices[0].Processes[0].LastLaunch.Equal(last), true},
		{"no launch time", s.Devices[0].Processes[1].LastLaunch.IsZero(), true},
		{"busy 0: live records only", s.Devices[0].BusySeconds, 1.75},
		{"busy 1: none recorded", s.Devices[1].BusySeconds, 0.0},
		{"process busy", s.Devices[0].Processes[0].BusySeconds, 1.5},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
