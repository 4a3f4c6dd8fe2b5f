//go:build cgo

package hookenv

import (
	"testing"

	"github.com/tessera-gpu/tessera/cuda-hook/cabi"
)

// TestLimitsReadersAgree holds the interception library's C reader
// (cuda-hook/src/limitsfile.c, through package cabi) to this package's
// decoder: on every case of TestDecodeLimits and on every one-byte deletion
// or substitution of two valid files, both accept or both refuse, and what
// both accept they read the same. A file the node agent writes that the
// library refuses would fail a container's CUDA; one the library accepts
// that the agent never meant would give it limits nobody chose.
func TestLimitsReadersAgree(t *testing.T) {
	inputs := map[string]string{}
	for _, c := range limitsCases() {
		inputs[c.name] = c.in
	}
	refusal := "tessera-limits v1\nallocation 0a1b\nrefused pod a/b holds GPU-x\nend\n"
	for _, base := range []string{goodLimits, refusal} {
		for i := range len(base) {
			inputs["delete "+string(rune('0'+i%10))+base[:i]] = base[:i] + base[i+1:]
			for _, c := range []string{" ", "\n", "0", "9", "a", "-", "\x00", "\r"} {
				inputs["replace "+base[:i]+c] = base[:i] + c + base[i+1:]
			}
		}
	}
	for name, in := range inputs {
		checkReadersAgree(t, name, []byte(in))
	}
}

// FuzzLimitsReadersAgree is TestLimitsReadersAgree on fuzzed input.
func FuzzLimitsReadersAgree(f *testing.F) {
	for _, c := range limitsCases() {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkReadersAgree(t, "fuzz", data) })
}

func checkReadersAgree(t *testing.T, name string, data []byte) {
	t.Helper()
	l, err := DecodeLimits(data)
	// Asked for another ID, the C reader must say exactly "another
	// allocation's" for a valid file, and "malformed" otherwise.
	other, _, _ := cabi.ParseLimits(data, "zz")
	if id := "zz"; err == nil && l.Allocation == id {
		other = cabi.LimitsOtherID // The file is zz's; the next check covers it.
	}
	status, devices, refused := cabi.ParseLimits(data, l.Allocation)
	switch {
	case err != nil:
		if status != cabi.LimitsMalformed || other != cabi.LimitsMalformed {
			t.Errorf("%s: Go refuses %q (%v), C reads it (status %d, %d for another ID)", clip(name), data, err, status, other)
		}
	case other != cabi.LimitsOtherID:
		t.Errorf("%s: %q is another allocation's, C says %d", clip(name), data, other)
	case l.Refused != "":
		if status != cabi.LimitsRefused || refused != l.Refused {
			t.Errorf("%s: Go reads refusal %q, C status %d refusal %q", clip(name), l.Refused, status, refused)
		}
	default:
		if status != cabi.LimitsOK || len(devices) != len(l.Devices) {
			t.Errorf("%s: Go reads %+v, C status %d devices %+v", clip(name), l.Devices, status, devices)
			return
		}
		for i, d := range l.Devices {
			c := devices[i]
			if c.UUID != d.UUID || c.MemoryMiB != d.MemoryMiB || c.CorePercent != d.CorePercent {
				t.Errorf("%s: device %d: Go %+v, C %+v", clip(name), i, d, c)
			}
		}
	}
}
