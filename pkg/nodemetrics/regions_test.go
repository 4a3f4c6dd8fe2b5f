//go:build linux

package nodemetrics

import (
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/region"
)

// Offsets of cuda-hook/include/tessera_region.h, written out here so the
// test builds region files the way the hook does; regionSize must equal
// pkg/region's Size (itself checked against the C header by cgo), which
// catches any drift of this copy.
const (
	devicesOff   = 72
	deviceSize   = 88
	procsOff     = devicesOff + region.MaxDevices*deviceSize
	procSize     = 656
	regionSize   = procsOff + region.MaxProcs*procSize
	procUsedOff  = 16
	procLaunchOf = procUsedOff + 2*region.MaxDevices*8  // after used_bytes and pending_bytes
	procBusyOff  = procLaunchOf + 2*region.MaxDevices*8 // after launches and last_launch_ns
)

type testProc struct {
	pid      int32
	used     []uint64 // per device
	launches []uint64
	busyNs   []uint64
}

// encodeRegion builds a READY region with the given device UUIDs and processes.
func encodeRegion(t *testing.T, uuids []string, procs []testProc) []byte {
	t.Helper()
	if regionSize != region.Size {
		t.Fatalf("test layout is %d bytes, pkg/region's is %d: update the offsets", regionSize, region.Size)
	}
	b := make([]byte, regionSize)
	le := binary.NativeEndian
	le.PutUint64(b[0:], region.Magic)
	le.PutUint32(b[8:], region.Version)
	le.PutUint32(b[12:], 2) // READY
	le.PutUint32(b[16:], uint32(regionSize))
	le.PutUint32(b[20:], uint32(len(uuids)))
	le.PutUint32(b[24:], region.MaxDevices)
	le.PutUint32(b[28:], region.MaxProcs)
	le.PutUint32(b[32:], uint32(len(procs)))
	for i, u := range uuids {
		copy(b[devicesOff+i*deviceSize+24:], u)
	}
	for p, pr := range procs {
		base := procsOff + p*procSize
		le.PutUint32(b[base:], uint32(pr.pid))
		for d := range pr.used {
			le.PutUint64(b[base+procUsedOff+d*8:], pr.used[d])
			le.PutUint64(b[base+procLaunchOf+d*8:], pr.launches[d])
		}
		for d := range pr.busyNs {
			le.PutUint64(b[base+procBusyOff+d*8:], pr.busyNs[d])
		}
	}
	return b
}

func TestRegionFiles(t *testing.T) {
	stateDir := t.TempDir()
	path := func(podUID, container string) (string, error) {
		return deviceplugin.RegionFile(stateDir, podUID, container)
	}
	write := func(uid, ctr string, data []byte) {
		p, err := path(uid, ctr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("uid-ready", "main", encodeRegion(t, []string{"GPU-a0", "GPU-a1"}, []testProc{
		{pid: 10, used: []uint64{1 << 30, 0}, launches: []uint64{5, 0}, busyNs: []uint64{2_000_000_000, 0}},
		{pid: 11, used: []uint64{2 << 30, 512}, launches: []uint64{1, 9}, busyNs: []uint64{500_000_000, 250_000_000}},
		{pid: -12, used: []uint64{4096, 0}, launches: []uint64{100, 0}, busyNs: []uint64{9e9, 0}}, // being reclaimed
	}))
	write("uid-empty", "main", nil) // as the device plugin creates it
	bad := encodeRegion(t, []string{"GPU-a0"}, nil)
	binary.NativeEndian.PutUint64(bad[0:], 0xdeadbeef)
	write("uid-bad", "main", bad)

	read := RegionFiles(path)
	tests := []struct {
		name, uid, ctr string
		want           RegionSnapshot
		wantErr        string
		notExist       bool
	}{
		{name: "ready region", uid: "uid-ready", ctr: "main", want: RegionSnapshot{Processes: 2, Devices: []RegionDevice{
			// The reclaiming record's memory still counts, its launches and busy time do not.
			{UUID: "GPU-a0", UsedBytes: 3<<30 + 4096, KernelLaunches: 6, BusySeconds: 2.5},
			{UUID: "GPU-a1", UsedBytes: 512, KernelLaunches: 9, BusySeconds: 0.25},
		}}},
		{name: "empty file: no process yet", uid: "uid-empty", ctr: "main", want: RegionSnapshot{}},
		{name: "no file", uid: "uid-none", ctr: "main", notExist: true, wantErr: "no such file"},
		{name: "corrupt region", uid: "uid-bad", ctr: "main", wantErr: "magic"},
		{name: "container name climbing out", uid: "uid-ready", ctr: "..", wantErr: "cannot name a directory"},
		{name: "pod UID with a slash", uid: "../uid-ready", ctr: "main", wantErr: "cannot name a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := read(tt.uid, tt.ctr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if errors.Is(err, fs.ErrNotExist) != tt.notExist {
					t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", !tt.notExist, tt.notExist)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("snapshot = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFromRegionNil(t *testing.T) {
	if got := FromRegion(nil); !reflect.DeepEqual(got, RegionSnapshot{}) {
		t.Errorf("FromRegion(nil) = %+v", got)
	}
}
