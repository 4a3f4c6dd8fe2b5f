package env

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"

	"k8s.io/client-go/rest"
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
	seen []refusal // each distinct one once, in order
}

// refusal is one refused request. Where the recorder knows the API server
// (admin), the refusal can be checked again at the end: a kube-apiserver
// that was just restarted refuses requests until its RBAC authorizer has
// read the roles, which is the server starting, not a rule the chart lacks.
type refusal struct {
	line   string // "component: user may not verb resource (API group ...)"
	denial *install.Denial
	admin  *rest.Config // of the API server that refused it; nil: unknown
}

// wrap is the transport wrapper of component's clients of the API server
// whose admin configuration is admin.
func (r *refusals) wrap(component string, admin *rest.Config) transport.WrapperFunc {
	return func(next http.RoundTripper) http.RoundTripper {
		return &refusalRecorder{next: next, component: component, admin: admin, refusals: r}
	}
}

// lines are the refusals seen, in order.
func (r *refusals) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	lines := make([]string, len(r.seen))
	for i, f := range r.seen {
		lines[i] = f.line
	}
	return lines
}

// lasting are the refusals that still hold: each one whose API server is
// known is asked again (a SubjectAccessReview), and one it allows now is
// passed to transient instead.
func (r *refusals) lasting(ctx context.Context, transient func(line string)) []string {
	r.mu.Lock()
	seen := slices.Clone(r.seen)
	r.mu.Unlock()
	var out []string
	for _, f := range seen {
		if f.denial == nil || f.admin == nil {
			out = append(out, f.line)
			continue
		}
		allowed, err := f.denial.AllowedNow(ctx, f.admin)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s (and checking it again failed: %v)", f.line, err))
		case allowed:
			transient(f.line)
		default:
			out = append(out, f.line)
		}
	}
	return out
}

// add records the refusal of req with the answer's body: the API server's
// Status message names the user, verb and resource; a 403 without that
// message (from a proxy in between) is recorded by method and path.
func (r *refusals) add(component string, admin *rest.Config, req *http.Request, body []byte) {
	ds := install.ParseDenials(string(body))
	for i := range ds {
		r.record(refusal{line: fmt.Sprintf("%s: %s", component, ds[i]), denial: &ds[i], admin: admin})
	}
	if len(ds) == 0 {
		r.record(refusal{line: fmt.Sprintf("%s: refused %s %s: %.200s", component, req.Method, req.URL.Path, body)})
	}
}

// addText records every forbidden answer quoted in a process's output and
// says whether there was one.
func (r *refusals) addText(component, text string) bool {
	ds := install.ParseDenials(text)
	for _, d := range ds {
		r.record(refusal{line: fmt.Sprintf("%s: %s", component, d)})
	}
	return len(ds) > 0
}

func (r *refusals) record(f refusal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.ContainsFunc(r.seen, func(g refusal) bool { return g.line == f.line }) {
		r.seen = append(r.seen, f)
	}
}

type refusalRecorder struct {
	next      http.RoundTripper
	component string
	admin     *rest.Config
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
	rr.refusals.add(rr.component, rr.admin, req, body)
	// The client reads the answer as it was.
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// WrappedRoundTripper lets client-go's debugging find the next transport.
func (rr *refusalRecorder) WrappedRoundTripper() http.RoundTripper { return rr.next }
