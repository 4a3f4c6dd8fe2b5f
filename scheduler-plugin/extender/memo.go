package extender

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// maxFits is how many verdicts a view remembers: the requests of the
// workloads being scheduled at one time. A new request replaces the oldest,
// so a stream of one-off shapes costs a fixed amount of memory.
const maxFits = 16

// requestKey identifies a request for the memo of fit verdicts.
type requestKey struct {
	// text is the request's JSON, every field: equal texts, equal requests.
	text string
	// hash is text's FNV-1a, computed once per filter call and compared
	// before text, so that a node's lookup rarely touches the text.
	hash uint64
}

func newRequestKey(req vgpu.PodRequest) (requestKey, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return requestKey{}, fmt.Errorf("encode GPU request: %w", err)
	}
	h := fnv.New64a()
	_, _ = h.Write(b) // a hash.Hash never fails to write
	return requestKey{text: string(b), hash: h.Sum64()}, nil
}

// fitMemo is the verdicts (nil: fits) given on one view, newest last in a
// ring. kube-scheduler asks every node the same question for pod after pod
// of one workload, and the answer changes only when the view does, which
// replaces the view and so the memo.
type fitMemo struct {
	entries [maxFits]fitEntry
	used    int // entries filled
	next    int // the entry a new verdict overwrites
}

type fitEntry struct {
	key requestKey
	err error
}

func (m *fitMemo) get(k requestKey) (verdict error, ok bool) {
	for i := range m.used {
		if e := &m.entries[i]; e.key.hash == k.hash && e.key.text == k.text {
			return e.err, true
		}
	}
	return nil, false
}

func (m *fitMemo) put(k requestKey, err error) {
	m.entries[m.next] = fitEntry{key: k, err: err}
	m.next = (m.next + 1) % maxFits
	if m.used < maxFits {
		m.used++
	}
}

// fitLocked answers whether the request fits the view, from the memo when
// the view is the node's cached one. The caller holds s.mu.
func (s *nodeState) fitLocked(view *nodeView, req vgpu.PodRequest, key requestKey) error {
	if view != s.view {
		// A view without the pod's own claim, built for this call only.
		return vgpu.Check(view.devices, req)
	}
	if view.fits == nil {
		view.fits = &fitMemo{}
	} else if err, ok := view.fits.get(key); ok {
		return err
	}
	err := vgpu.Check(view.devices, req)
	view.fits.put(key, err)
	return err
}
