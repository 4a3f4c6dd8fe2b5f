package env

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"k8s.io/client-go/transport"

	"github.com/tessera-gpu/tessera/test/install"
)

// maxRefusalBody bounds how much of a 403 answer is read: a Status is small.
const maxRefusalBody = 64 << 10

// refusals records every request the API server refused (HTTP 403) to a
// Tessera component's client. A component may log a refusal, retry it
// quietly (an informer) or turn it into a value (the fleet reader's
// "unreachable"): the record sees it in every case.
type refusals struct {
	mu   sync.Mutex
	seen []string // "component: user may not verb resource (API group ...)", each once
}

// wrap is the transport wrapper of component's clients.
func (r *refusals) wrap(component string) transport.WrapperFunc {
	return func(next http.RoundTripper) http.RoundTripper {
		return &refusalRecorder{next: next, component: component, refusals: r}
	}
}

// lines are the refusals seen, in order.
func (r *refusals) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// add records the refusal of req with the answer's body: the API server's
// Status message names the user, verb and resource; a 403 without that
// message (from a proxy in between) is recorded by method and path.
func (r *refusals) add(component string, req *http.Request, body []byte) {
	if !r.addText(component, string(body)) {
		r.record(fmt.Sprintf("%s: refused %s %s: %.200s", component, req.Method, req.URL.Path, body))
	}
}

// addText records every forbidden answer quoted in a process's output and
// says whether there was one.
func (r *refusals) addText(component, text string) bool {
	ds := install.ParseDenials(text)
	for _, d := range ds {
		r.record(fmt.Sprintf("%s: %s", component, d))
	}
	return len(ds) > 0
}

func (r *refusals) record(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.seen, line) {
		r.seen = append(r.seen, line)
	}
}

type refusalRecorder struct {
	next      http.RoundTripper
	component string
	refusals  *refusals
}

func (rr *refusalRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rr.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRefusalBody))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the API server's 403 answer to %s %s: %w", req.Method, req.URL.Path, err)
	}
	rr.refusals.add(rr.component, req, body)
	// The client reads the answer as it was.
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// WrappedRoundTripper lets client-go's debugging find the next transport.
func (rr *refusalRecorder) WrappedRoundTripper() http.RoundTripper { return rr.next }
