package fleetweb

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// FleetResponse is GET /api/fleet: the fleet as `tessera fleet -o json`
// prints it, with what the page needs to say how old it is.
type FleetResponse struct {
	// Now is the server's clock when it answered, so that the page can
	// tell the data's age without trusting the browser's clock.
	Now time.Time `json:"now"`
	// RefreshSeconds is how often the page asks again.
	RefreshSeconds float64 `json:"refreshSeconds"`
	// Error is why the latest read of the fleet failed (Karmada itself did
	// not answer); the fleet shown is then the one read before.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"errorAt,omitzero"`
	// Fleet is null until the first read succeeds.
	Fleet *fleet.Fleet `json:"fleet"`
}

// fleetResponseHead is FleetResponse without the fleet, which is spliced
// in already encoded.
type fleetResponseHead struct {
	Now            time.Time `json:"now"`
	RefreshSeconds float64   `json:"refreshSeconds"`
	Error          string    `json:"error,omitempty"`
	ErrorAt        time.Time `json:"errorAt,omitzero"`
}

// FitBody is POST /api/fit: one replica given by its shape or by a pasted
// workload file, and how many replicas are wanted.
type FitBody struct {
	Shape *fleet.Shape `json:"shape,omitempty"`
	// Replicas wanted; 0 means the workload's own count, or only count.
	Replicas int32 `json:"replicas"`
	// Workload is a YAML or JSON workload file, read as `tessera fit -f`
	// reads it.
	Workload string `json:"workload,omitempty"`
}

// FitResponse is (*fleet.State).Fit's answer, with which state it was
// computed on and which workload it read.
type FitResponse struct {
	*fleet.FitResult
	// Workload is "Kind name" of the workload read, for a pasted file.
	Workload string `json:"workload,omitempty"`
	// ReadAt is when the state the answer was computed on was read.
	ReadAt time.Time `json:"readAt"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// maxFitBodyBytes bounds a fit request: a workload file of the largest
// size ReadWorkload reads, escaped as a JSON string, with room to spare.
const maxFitBodyBytes = 2*fleet.MaxWorkloadBytes + 64<<10

// gzipMinBytes is the size below which compressing is not worth it.
const gzipMinBytes = 8 << 10

// fleetCache holds the encoded fleet of the latest state: a large fleet's
// JSON takes long enough to encode that every browser polling must not
// encode it again.
type fleetCache struct {
	mu    sync.Mutex
	state *fleet.State
	json  []byte
}

func (c *fleetCache) encoded(st *fleet.State) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == c.state {
		return c.json, nil
	}
	data, err := json.Marshal(&st.Fleet)
	if err != nil {
		return nil, fmt.Errorf("encode the fleet: %w", err)
	}
	c.state, c.json = st, data
	return data, nil
}

func (s *Server) serveFleet(w http.ResponseWriter, r *http.Request) {
	snap := s.src.Latest()
	head := fleetResponseHead{Now: s.opts.Now(), RefreshSeconds: s.opts.Refresh.Seconds()}
	if snap.Err != nil {
		head.Error, head.ErrorAt = snap.Err.Error(), snap.ErrAt
	}
	fleetJSON := []byte("null")
	if snap.State != nil {
		data, err := s.cache.encoded(snap.State)
		if err != nil {
			klog.FromContext(r.Context()).Error(err, "Serving the fleet's JSON failed")
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		fleetJSON = data
	}
	// The fleet is spliced in rather than re-encoded: at thousands of
	// nodes, even re-validating it as a json.RawMessage costs more than
	// everything else in the request.
	headJSON, err := json.Marshal(head)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("encode the answer: %v", err))
		return
	}
	body := make([]byte, 0, len(headJSON)+len(fleetJSON)+16)
	body = append(body, headJSON[:len(headJSON)-1]...) // without its closing brace
	body = append(body, `,"fleet":`...)
	body = append(body, fleetJSON...)
	body = append(body, "}\n"...)
	writeBody(w, r, http.StatusOK, body)
}

func (s *Server) serveFit(w http.ResponseWriter, r *http.Request) {
	logger := klog.FromContext(r.Context())
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Requiring JSON also means a cross-site form cannot post here
		// without the browser asking this server first (CORS preflight),
		// which it never allows.
		writeError(w, http.StatusUnsupportedMediaType, "send the fit request as Content-Type: application/json")
		return
	}
	body, err := readFitBody(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	snap := s.src.Latest()
	if snap.State == nil {
		msg := "the fleet has not been read yet"
		if snap.Err != nil {
			msg += ": " + snap.Err.Error()
		}
		writeError(w, http.StatusServiceUnavailable, msg)
		return
	}
	req, workload, err := body.request(s.opts)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.fitMu.Lock()
	res, err := snap.State.Fit(r.Context(), req)
	s.fitMu.Unlock()
	if err != nil {
		logger.V(2).Info("Fit request failed", "err", err)
		writeError(w, http.StatusBadRequest, fmt.Sprintf("fit the replica: %v", err))
		return
	}
	writeJSON(w, r, http.StatusOK, FitResponse{FitResult: res, Workload: workload, ReadAt: snap.State.Fleet.ReadAt})
}

// readFitBody decodes the request strictly: unknown fields and trailing
// data are errors, as the CLI's flags are.
func readFitBody(w http.ResponseWriter, r *http.Request) (FitBody, error) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxFitBodyBytes))
	dec.DisallowUnknownFields()
	var body FitBody
	if err := dec.Decode(&body); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return FitBody{}, fmt.Errorf("read the fit request: it is larger than %d bytes", maxFitBodyBytes)
		}
		return FitBody{}, fmt.Errorf("read the fit request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return FitBody{}, errors.New("read the fit request: data after the JSON object")
	}
	return body, nil
}

// request turns the body into a fit request exactly as `tessera fit` turns
// its flags: a shape through fleet.Shape, a file through fleet.ReadWorkload.
func (b FitBody) request(opts Options) (fleet.FitRequest, string, error) {
	if b.Replicas < 0 {
		return fleet.FitRequest{}, "", fmt.Errorf("replicas must not be negative, not %d", b.Replicas)
	}
	byShape := b.Shape != nil && *b.Shape != (fleet.Shape{})
	switch {
	case strings.TrimSpace(b.Workload) != "" && byShape:
		return fleet.FitRequest{}, "", errors.New("give either a shape (vGPUs, memory, cores) or a workload file, not both")
	case strings.TrimSpace(b.Workload) != "":
		wl, err := fleet.ReadWorkload([]byte(b.Workload))
		if err != nil {
			return fleet.FitRequest{}, "", err
		}
		req := fleet.FitRequest{Template: wl.Template, Replicas: wl.Replicas}
		if b.Replicas > 0 {
			req.Replicas = b.Replicas
		}
		return req, wl.Kind + " " + wl.Name, nil
	case !byShape:
		return fleet.FitRequest{}, "", errors.New("say what one replica asks for: vGPUs, memory and cores, or a workload file")
	}
	template, err := b.Shape.Template(opts.Config.Resources)
	if err != nil {
		return fleet.FitRequest{}, "", fmt.Errorf("the replica's %w", err)
	}
	return fleet.FitRequest{Template: template, Replicas: b.Replicas}, "", nil
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, nil, status, ErrorResponse{Error: msg})
}

func writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		// Every value sent is built from Go types that encode; this guards
		// a mistake, it is not expected.
		http.Error(w, `{"error":"encode the answer"}`, http.StatusInternalServerError)
		return
	}
	writeBody(w, r, status, append(data, '\n'))
}

// writeBody answers a JSON body, gzip-compressed when the client takes it
// and the body is large enough for that to pay: a large fleet's JSON
// shrinks about tenfold. r may be nil for answers that are always small.
func writeBody(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Add("Vary", "Accept-Encoding")
	head := r != nil && r.Method == http.MethodHead
	if r != nil && len(body) >= gzipMinBytes && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
		w.WriteHeader(status)
		if head {
			return
		}
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
		_, _ = zw.Write(body)
		_ = zw.Close()
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if !head {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reads an Accept-Encoding header: gzip, unless with q=0.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		params = strings.ReplaceAll(params, " ", "")
		if q, ok := strings.CutPrefix(params, "q="); ok {
			if v, err := strconv.ParseFloat(q, 64); err == nil && v == 0 {
				return false
			}
		}
		return true
	}
	return false
}
