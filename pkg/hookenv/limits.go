package hookenv

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The limits file carries what the kubelet's Allocate cannot decide: the
// memory and core limits of one container, which depend on the pod, and the
// kubelet names the pod only after Allocate (through its PodResources API).
// The node agent writes it into the allocation's directory once the kubelet
// has said whose allocation it is; the interception library reads it at CUDA
// initialisation (cuda-hook/src/limitsfile.c is the C reader of this same
// format, and the fuzz test here and the C test there hold both to it).
//
// The format is line-based text so that a C reader with no allocator and no
// JSON parser can be strict about it:
//
//	tessera-limits v1
//	allocation <id>
//	devices <n>
//	device <i> <uuid> <memoryMiB> <corePercent>     (n lines, i = 0..n-1)
//	end
//
// or, when the container must not use its GPUs (its pod's assignment does not
// name the GPUs the kubelet gave it, say):
//
//	tessera-limits v1
//	allocation <id>
//	refused <reason>
//	end
//
// Every line ends in '\n'; fields are separated by exactly one space; numbers
// are decimal without sign or leading zeros; nothing may follow "end\n".
const (
	// LimitsMagic is the first line, with the format's version.
	LimitsMagic = "tessera-limits v1"
	// LimitsMaxBytes bounds the file: 16 devices fit in well under 4 KiB.
	LimitsMaxBytes = 4096
	// LimitsMaxDevices is the most devices a container can have (the
	// region's TESSERA_REGION_MAX_DEVICES).
	LimitsMaxDevices = 16
	// LimitsMaxMemoryMiB bounds a memory limit (1 PiB), far above any GPU.
	LimitsMaxMemoryMiB = 1 << 30
	// LimitsMaxIDLen bounds an allocation ID.
	LimitsMaxIDLen = 64
	// LimitsMaxUUIDLen bounds a device UUID.
	LimitsMaxUUIDLen = 96
	// LimitsMaxReasonLen bounds a refusal's reason.
	LimitsMaxReasonLen = 512
)

// Limits is the content of a limits file.
type Limits struct {
	// Allocation is the ID of the Allocate call this file answers; the
	// library takes only a file whose ID is the one in its environment
	// (AllocationID), so a file left from an earlier allocation of the same
	// slots is never read as this one's.
	Allocation string
	// Devices are the container's devices in ordinal order (the order of
	// NVIDIA_VISIBLE_DEVICES). Empty when Refused is set.
	Devices []DeviceLimit
	// Refused, when not empty, is why the container must not use CUDA at
	// all; the library fails every CUDA call with it.
	Refused string
}

// EncodeLimits renders a limits file; it refuses what DecodeLimits would.
func EncodeLimits(l Limits) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(LimitsMagic + "\n")
	fmt.Fprintf(&b, "allocation %s\n", l.Allocation)
	if l.Refused != "" {
		if len(l.Devices) > 0 {
			return nil, errors.New("encode limits: a refusal has no devices")
		}
		fmt.Fprintf(&b, "refused %s\n", l.Refused)
	} else {
		fmt.Fprintf(&b, "devices %d\n", len(l.Devices))
		for i, d := range l.Devices {
			fmt.Fprintf(&b, "device %d %s %d %d\n", i, d.UUID, d.MemoryMiB, d.CorePercent)
		}
	}
	b.WriteString("end\n")
	// Decoding is the one definition of what is valid.
	if _, err := DecodeLimits(b.Bytes()); err != nil {
		return nil, fmt.Errorf("encode limits: %w", err)
	}
	return b.Bytes(), nil
}

// DecodeLimits parses and checks a limits file.
func DecodeLimits(data []byte) (Limits, error) {
	l, err := decodeLimits(data)
	if err != nil {
		return Limits{}, fmt.Errorf("decode limits file: %w", err)
	}
	return l, nil
}

func decodeLimits(data []byte) (Limits, error) {
	if len(data) > LimitsMaxBytes {
		return Limits{}, fmt.Errorf("%d bytes, more than %d", len(data), LimitsMaxBytes)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		return Limits{}, errors.New("empty, or the last line does not end in a newline (truncated?)")
	}
	lines := strings.Split(string(data[:len(data)-1]), "\n")
	next := func() (string, bool) {
		if len(lines) == 0 {
			return "", false
		}
		line := lines[0]
		lines = lines[1:]
		return line, true
	}
	if line, _ := next(); line != LimitsMagic {
		return Limits{}, fmt.Errorf("first line %q is not %q", clip(line), LimitsMagic)
	}
	var l Limits
	line, _ := next()
	id, ok := strings.CutPrefix(line, "allocation ")
	if !ok || !ValidAllocationID(id) {
		return Limits{}, fmt.Errorf("line 2 %q is not \"allocation <id>\" with 1-%d characters [a-z0-9]", clip(line), LimitsMaxIDLen)
	}
	l.Allocation = id
	line, _ = next()
	if reason, ok := strings.CutPrefix(line, "refused "); ok {
		if reason == "" || len(reason) > LimitsMaxReasonLen || !printable(reason) {
			return Limits{}, fmt.Errorf("refusal reason is empty, longer than %d bytes or not printable ASCII", LimitsMaxReasonLen)
		}
		l.Refused = reason
	} else {
		count, ok := strings.CutPrefix(line, "devices ")
		n, err := parseUint(count, LimitsMaxDevices)
		if !ok || err != nil || n == 0 {
			return Limits{}, fmt.Errorf("line 3 %q is not \"devices <1-%d>\" or \"refused <reason>\"", clip(line), LimitsMaxDevices)
		}
		for i := range int(n) {
			line, _ := next()
			d, err := parseDevice(line, i)
			if err != nil {
				return Limits{}, fmt.Errorf("device %d: %w", i, err)
			}
			l.Devices = append(l.Devices, d)
		}
	}
	if line, ok := next(); !ok || line != "end" {
		return Limits{}, fmt.Errorf("line %q where \"end\" belongs", clip(line))
	}
	if len(lines) > 0 {
		return Limits{}, errors.New("lines after \"end\"")
	}
	return l, nil
}

func parseDevice(line string, i int) (DeviceLimit, error) {
	f := strings.Split(line, " ")
	if len(f) != 5 || f[0] != "device" {
		return DeviceLimit{}, fmt.Errorf("line %q is not \"device <i> <uuid> <memoryMiB> <corePercent>\"", clip(line))
	}
	if f[1] != strconv.Itoa(i) {
		return DeviceLimit{}, fmt.Errorf("ordinal %q, want %d", clip(f[1]), i)
	}
	if !validUUID(f[2]) {
		return DeviceLimit{}, fmt.Errorf("UUID %q is not 1-%d characters [A-Za-z0-9-]", clip(f[2]), LimitsMaxUUIDLen)
	}
	mem, err := parseUint(f[3], LimitsMaxMemoryMiB)
	if err != nil || mem == 0 {
		return DeviceLimit{}, fmt.Errorf("memory %q MiB is not 1-%d", clip(f[3]), LimitsMaxMemoryMiB)
	}
	cores, err := parseUint(f[4], 100)
	if err != nil {
		return DeviceLimit{}, fmt.Errorf("core percent %q is not 0-100 (0: no cap)", clip(f[4]))
	}
	return DeviceLimit{UUID: f[2], MemoryMiB: int64(mem), CorePercent: int(cores)}, nil
}

// parseUint accepts canonical decimal only (no sign, no leading zero), so
// that a file has exactly one spelling and the C reader agrees on it.
func parseUint(s string, maxValue uint64) (uint64, error) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, errors.New("not canonical decimal")
	}
	var v uint64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, errors.New("not canonical decimal")
		}
		v = v*10 + uint64(c-'0')
	}
	if v > maxValue {
		return 0, errors.New("out of range")
	}
	return v, nil
}

// ValidAllocationID reports whether s can be an allocation ID.
func ValidAllocationID(s string) bool {
	if s == "" || len(s) > LimitsMaxIDLen {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func validUUID(s string) bool {
	if s == "" || len(s) > LimitsMaxUUIDLen {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, c := range []byte(s) {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// SanitizeReason makes any text a valid refusal reason: printable ASCII,
// within the length bound.
func SanitizeReason(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > LimitsMaxReasonLen {
		b = append(b[:LimitsMaxReasonLen-3], "..."...)
	}
	if len(b) == 0 {
		return "refused"
	}
	return string(b)
}

// clip keeps error messages short whatever the file holds.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
