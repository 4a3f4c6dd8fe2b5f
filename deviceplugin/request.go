package deviceplugin

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// slotRequest is a set of slot IDs from the kubelet, checked against the
// node's GPUs.
type slotRequest struct {
	// slots are the slot IDs, sorted.
	slots []string
	// gpus are the distinct GPU UUIDs of those slots, sorted.
	gpus []string
}

// requestError is bad input from the kubelet, with the gRPC code it earns.
type requestError struct {
	code codes.Code
	msg  string
}

func (e *requestError) Error() string { return e.msg }

// maxListed bounds how many IDs an error message quotes.
const maxListed = 16

// quoteList renders IDs for an error message, quoted (so that odd bytes
// from a caller are visible) and truncated.
func quoteList(ids []string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i == maxListed {
			fmt.Fprintf(&b, " ...and %d more", len(ids)-maxListed)
			break
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%q", id)
	}
	b.WriteByte(']')
	return b.String()
}

// decodeSlotRequest checks that ids are distinct, well-formed slot IDs of
// slots that exist on the node's GPUs.
func decodeSlotRequest(ids []string, gpus []vgpu.GPU) (slotRequest, error) {
	if len(ids) == 0 {
		return slotRequest{}, &requestError{codes.InvalidArgument, "the request names no slot IDs"}
	}
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	req := slotRequest{slots: sorted, gpus: make([]string, 0, len(sorted))}
	for i, id := range sorted {
		if i > 0 && sorted[i-1] == id {
			return slotRequest{}, &requestError{codes.InvalidArgument,
				fmt.Sprintf("slot ID %q appears twice in the request %s", id, quoteList(ids))}
		}
		uuid, n, err := vgpu.ParseSlotID(id)
		if err != nil {
			return slotRequest{}, &requestError{codes.InvalidArgument,
				fmt.Sprintf("request %s: %v", quoteList(ids), err)}
		}
		g, ok := findGPU(gpus, uuid)
		if !ok {
			return slotRequest{}, &requestError{codes.NotFound,
				fmt.Sprintf("request %s: slot %q is on GPU %q, which this node does not have", quoteList(ids), id, uuid)}
		}
		if n >= g.Slots {
			return slotRequest{}, &requestError{codes.NotFound,
				fmt.Sprintf("request %s: slot %q does not exist: GPU %s has %d slots", quoteList(ids), id, uuid, g.Slots)}
		}
		req.gpus = append(req.gpus, uuid)
	}
	slices.Sort(req.gpus)
	req.gpus = slices.Compact(req.gpus)
	return req, nil
}

// unhealthyGPUs lists the GPUs of the request that are unhealthy now.
func (r slotRequest) unhealthyGPUs(gpus []vgpu.GPU) []string {
	var bad []string
	for _, uuid := range r.gpus {
		if g, ok := findGPU(gpus, uuid); ok && !g.Healthy {
			bad = append(bad, uuid)
		}
	}
	return bad
}
