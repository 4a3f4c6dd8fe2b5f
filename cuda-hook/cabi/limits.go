package cabi

/*
#cgo CFLAGS: -I${SRCDIR}/../include -I${SRCDIR}/../src -D_GNU_SOURCE
// The library's own reader, compiled here so that tests hold the Go decoder
// (pkg/hookenv) and it to the same format, byte for byte. Go's build cache
// does not notice changes to files included from outside this directory:
// after changing src/limitsfile.c, test with -a (or a fresh GOCACHE).
#include <stdlib.h>
#include "../src/limitsfile.c"

static int parse_limits(const char *buf, size_t len, const char *want, struct limits_file *out)
{
    char why[256];
    return (int)limits_parse(buf, len, want, out, why, sizeof(why));
}
*/
import "C"

import "unsafe"

// What the library's limits-file parser concludes (enum limits_status).
const (
	LimitsOK        = C.LIMITS_OK
	LimitsRefused   = C.LIMITS_REFUSED
	LimitsAbsent    = C.LIMITS_ABSENT
	LimitsOtherID   = C.LIMITS_OTHER_ID
	LimitsMalformed = C.LIMITS_MALFORMED
)

// LimitsDevice is one device line as the library read it.
type LimitsDevice struct {
	UUID        string
	MemoryMiB   int64
	CorePercent int
}

// ParseLimits runs the interception library's parser (src/limitsfile.c) on
// a limits file for allocation wantID.
func ParseLimits(data []byte, wantID string) (status int, devices []LimitsDevice, refused string) {
	var out C.struct_limits_file
	buf := C.CBytes(data)
	defer C.free(buf)
	want := C.CString(wantID)
	defer C.free(unsafe.Pointer(want))
	status = int(C.parse_limits((*C.char)(buf), C.size_t(len(data)), want, &out))
	for i := range int(out.device_count) {
		devices = append(devices, LimitsDevice{
			UUID:        C.GoString(&out.uuid[i][0]),
			MemoryMiB:   int64(out.mem_mib[i]),
			CorePercent: int(out.core_pct[i]),
		})
	}
	return status, devices, C.GoString(&out.refused[0])
}
