package extender

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"k8s.io/klog/v2"
	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

// MaxRequestBytes bounds one call's body. A nodeCacheCapable call carries
// one pod and node names (kilobytes); a scheduler configured without
// nodeCacheCapable sends whole Nodes, which for thousands of nodes is tens
// of megabytes. Anything larger is refused rather than read into memory.
const MaxRequestBytes = 64 << 20

// Paths of the verbs, relative to the extender's URL prefix; they match the
// filterVerb, prioritizeVerb and bindVerb of deploy/scheduler.
const (
	FilterPath     = "/filter"
	PrioritizePath = "/prioritize"
	BindPath       = "/bind"
	HealthPath     = "/healthz"
)

// Handler serves the extender's verbs.
func (e *Extender) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+FilterPath, e.serveFilter)
	mux.HandleFunc("POST "+PrioritizePath, e.servePrioritize)
	mux.HandleFunc("POST "+BindPath, e.serveBind)
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// DecodeExtenderArgs reads the body of a filter or prioritize call. It
// checks what the extender relies on: a pod, and candidate nodes. Unknown
// fields are allowed, so that a newer kube-scheduler's additions do not
// break the call.
func DecodeExtenderArgs(r io.Reader) (*extenderv1.ExtenderArgs, error) {
	var args extenderv1.ExtenderArgs
	if err := decodeOne(r, &args); err != nil {
		return nil, fmt.Errorf("decode extender args: %w", err)
	}
	if args.Pod == nil {
		return nil, errors.New("decode extender args: no Pod")
	}
	if _, err := candidates(&args); err != nil {
		return nil, fmt.Errorf("decode extender args: %w", err)
	}
	return &args, nil
}

// DecodeBindingArgs reads the body of a bind call.
func DecodeBindingArgs(r io.Reader) (*extenderv1.ExtenderBindingArgs, error) {
	var args extenderv1.ExtenderBindingArgs
	if err := decodeOne(r, &args); err != nil {
		return nil, fmt.Errorf("decode binding args: %w", err)
	}
	return &args, nil
}

func decodeOne(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

func (e *Extender) serveFilter(w http.ResponseWriter, r *http.Request) {
	args, err := DecodeExtenderArgs(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		klog.FromContext(r.Context()).Info("Rejecting filter call", "err", err, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusBadRequest, &extenderv1.ExtenderFilterResult{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, e.Filter(r.Context(), args))
}

func (e *Extender) servePrioritize(w http.ResponseWriter, r *http.Request) {
	args, err := DecodeExtenderArgs(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		klog.FromContext(r.Context()).Info("Rejecting prioritize call", "err", err, "remote", r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	scores, err := e.Prioritize(r.Context(), args)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusOK, scores)
}

func (e *Extender) serveBind(w http.ResponseWriter, r *http.Request) {
	args, err := DecodeBindingArgs(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		klog.FromContext(r.Context()).Info("Rejecting bind call", "err", err, "remote", r.RemoteAddr)
		writeJSON(w, http.StatusBadRequest, &extenderv1.ExtenderBindingResult{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, e.Bind(r.Context(), args))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode response: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
