package hookenv

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const goodLimits = "tessera-limits v1\nallocation 0a1b\ndevices 2\n" +
	"device 0 GPU-aa 10240 30\ndevice 1 GPU-bb 1 0\nend\n"

// limitsCase is one limits file and what decoding it gives.
type limitsCase struct {
	name    string
	in      string
	want    Limits
	wantErr string
}

// limitsCases are shared with the test that holds the C reader to the same
// answers (limits_cgo_test.go).
func limitsCases() []limitsCase {
	return []limitsCase{
		{name: "two devices", in: goodLimits, want: Limits{Allocation: "0a1b", Devices: []DeviceLimit{
			{UUID: "GPU-aa", MemoryMiB: 10240, CorePercent: 30}, {UUID: "GPU-bb", MemoryMiB: 1}}}},
		{name: "refused", in: "tessera-limits v1\nallocation z9\nrefused pod a/b holds GPU-x, assigned GPU-y\nend\n",
			want: Limits{Allocation: "z9", Refused: "pod a/b holds GPU-x, assigned GPU-y"}},
		{name: "empty", in: "", wantErr: "truncated"},
		{name: "truncated", in: strings.TrimSuffix(goodLimits, "end\n"), wantErr: `"end"`},
		{name: "no final newline", in: strings.TrimSuffix(goodLimits, "\n"), wantErr: "truncated"},
		{name: "other version", in: strings.Replace(goodLimits, "v1", "v2", 1), wantErr: "first line"},
		{name: "CRLF", in: strings.ReplaceAll(goodLimits, "\n", "\r\n"), wantErr: "first line"},
		{name: "bad id", in: strings.Replace(goodLimits, "0a1b", "0A1B", 1), wantErr: "allocation"},
		{name: "missing id", in: strings.Replace(goodLimits, "allocation 0a1b", "allocation ", 1), wantErr: "allocation"},
		{name: "zero devices", in: "tessera-limits v1\nallocation a\ndevices 0\nend\n", wantErr: "devices"},
		{name: "17 devices", in: "tessera-limits v1\nallocation a\ndevices 17\nend\n", wantErr: "devices"},
		{name: "fewer device lines", in: strings.Replace(goodLimits, "devices 2", "devices 3", 1), wantErr: "device 2"},
		{name: "more device lines", in: strings.Replace(goodLimits, "devices 2", "devices 1", 1), wantErr: `"end"`},
		{name: "ordinal out of order", in: strings.Replace(goodLimits, "device 1 GPU-bb", "device 2 GPU-bb", 1), wantErr: "ordinal"},
		{name: "zero memory", in: strings.Replace(goodLimits, "GPU-bb 1 0", "GPU-bb 0 0", 1), wantErr: "memory"},
		{name: "leading zero", in: strings.Replace(goodLimits, "10240", "010240", 1), wantErr: "memory"},
		{name: "negative memory", in: strings.Replace(goodLimits, "10240", "-10240", 1), wantErr: "memory"},
		{name: "huge memory", in: strings.Replace(goodLimits, "10240", "99999999999999999999", 1), wantErr: "memory"},
		{name: "cores over 100", in: strings.Replace(goodLimits, "10240 30", "10240 101", 1), wantErr: "core"},
		{name: "double space", in: strings.Replace(goodLimits, "GPU-aa 10240", "GPU-aa  10240", 1), wantErr: "device 0"},
		{name: "bad uuid", in: strings.Replace(goodLimits, "GPU-aa", "GPU/aa", 1), wantErr: "UUID"},
		{name: "trailing line", in: goodLimits + "x\n", wantErr: "after"},
		{name: "empty refusal", in: "tessera-limits v1\nallocation a\nrefused \nend\n", wantErr: "reason"},
		{name: "control in refusal", in: "tessera-limits v1\nallocation a\nrefused a\tb\nend\n", wantErr: "reason"},
		{name: "too big", in: goodLimits + strings.Repeat("x", LimitsMaxBytes), wantErr: "bytes"},
	}
}

func TestDecodeLimits(t *testing.T) {
	for _, tt := range limitsCases() {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeLimits([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Allocation != tt.want.Allocation || got.Refused != tt.want.Refused || len(got.Devices) != len(tt.want.Devices) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got.Devices {
				if got.Devices[i] != tt.want.Devices[i] {
					t.Errorf("device %d: %+v, want %+v", i, got.Devices[i], tt.want.Devices[i])
				}
			}
			again, err := EncodeLimits(got)
			if err != nil || string(again) != tt.in {
				t.Errorf("re-encoded %q (%v), want %q", again, err, tt.in)
			}
		})
	}
}

func TestEncodeLimitsRefusesWhatItCannotDecode(t *testing.T) {
	tests := []struct {
		name string
		l    Limits
	}{
		{"no id", Limits{Devices: []DeviceLimit{{UUID: "GPU-a", MemoryMiB: 1}}}},
		{"no devices", Limits{Allocation: "a"}},
		{"refusal with devices", Limits{Allocation: "a", Refused: "x", Devices: []DeviceLimit{{UUID: "GPU-a", MemoryMiB: 1}}}},
		{"newline in reason", Limits{Allocation: "a", Refused: "x\ndevices 1"}},
		{"space in uuid", Limits{Allocation: "a", Devices: []DeviceLimit{{UUID: "GPU a", MemoryMiB: 1}}}},
	}
	for _, tt := range tests {
		if b, err := EncodeLimits(tt.l); err == nil {
			t.Errorf("%s: encoded %q", tt.name, b)
		}
	}
}

func TestSanitizeReasonIsAlwaysEncodable(t *testing.T) {
	for _, in := range []string{"", "a\nb", strings.Repeat("é", 600), "ok"} {
		if _, err := EncodeLimits(Limits{Allocation: "a", Refused: SanitizeReason(in)}); err != nil {
			t.Errorf("SanitizeReason(%q): %v", in, err)
		}
	}
}

func TestAllocationEnv(t *testing.T) {
	env, err := AllocationEnv([]string{"GPU-a", "GPU-b"}, "abc", "/r", "/l", 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{DeviceCount: "2", DeviceUUIDVar(0): "GPU-a", DeviceUUIDVar(1): "GPU-b",
		RegionFile: "/r", LimitsFile: "/l", AllocationID: "abc", LimitsWaitMS: "1500"}
	if len(env) != len(want) {
		t.Errorf("env %v, want %v", env, want)
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	for _, bad := range []struct {
		uuids []string
		id    string
		wait  time.Duration
	}{
		{nil, "a", 0}, {[]string{"GPU-a"}, "A", 0}, {[]string{"GPU-a"}, "a", -time.Millisecond},
		{[]string{"GPU-a"}, "a", 11 * time.Minute}, {[]string{"GPU a"}, "a", 0},
	} {
		if _, err := AllocationEnv(bad.uuids, bad.id, "/r", "/l", bad.wait); err == nil {
			t.Errorf("AllocationEnv(%v, %q, %v) succeeded", bad.uuids, bad.id, bad.wait)
		}
	}
}

// FuzzDecodeLimits: the file is written by the node agent but lives where a
// container can see it; the decoder must never panic, and whatever it
// accepts re-encodes to the very same bytes (one spelling per value, which
// is what lets the C reader be held to the same format).
func FuzzDecodeLimits(f *testing.F) {
	f.Add([]byte(goodLimits))
	f.Add([]byte("tessera-limits v1\nallocation a\nrefused no\nend\n"))
	f.Add([]byte("tessera-limits v1\nallocation a\ndevices 1\ndevice 0 G 1 100\nend\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := DecodeLimits(data)
		if err != nil {
			return
		}
		again, err := EncodeLimits(l)
		if err != nil {
			t.Fatalf("re-encode of accepted %q failed: %v", data, err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted %q re-encodes to %q", data, again)
		}
	})
}
