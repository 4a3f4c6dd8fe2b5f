package extender

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	extenderv1 "k8s.io/kube-scheduler/extender/v1"
)

func post(t testing.TB, h http.Handler, path string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, bytes.NewReader(body)))
	return w
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandler(t *testing.T) {
	gpus := testGPUs("n", 1, a100, 80*gib, 4)
	pod := gpuPod("p", ctr{"main", 1, 40 * gib, -1})
	e, client, _ := newTestExtender(t, gpuNode(t, "n", gpus), pod)
	h := e.Handler()
	nodes := []string{"n", "ghost"}
	filterBody := mustJSON(t, extenderv1.ExtenderArgs{Pod: pod, NodeNames: &nodes})
	tests := []struct {
		name, path string
		body       []byte
		status     int
		// check inspects the decoded body.
		check func(t *testing.T, body []byte)
	}{{
		name: "filter", path: FilterPath, body: filterBody, status: http.StatusOK,
		check: func(t *testing.T, body []byte) {
			var res extenderv1.ExtenderFilterResult
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			if res.NodeNames == nil || len(*res.NodeNames) != 1 || (*res.NodeNames)[0] != "n" || res.FailedAndUnresolvableNodes["ghost"] == "" {
				t.Errorf("filter result %s", body)
			}
		},
	}, {
		name: "prioritize", path: PrioritizePath, body: filterBody, status: http.StatusOK,
		check: func(t *testing.T, body []byte) {
			var res extenderv1.HostPriorityList
			if err := json.Unmarshal(body, &res); err != nil {
				t.Fatal(err)
			}
			if len(res) != 2 || res[0].Host != "n" || res[0].Score <= 0 {
				t.Errorf("prioritize result %s", body)
			}
		},
	}, {
		name: "bind", path: BindPath, status: http.StatusOK,
		body: mustJSON(t, extenderv1.ExtenderBindingArgs{PodName: "p", PodNamespace: "default", PodUID: pod.UID, Node: "n"}),
		check: func(t *testing.T, body []byte) {
			var res extenderv1.ExtenderBindingResult
			if err := json.Unmarshal(body, &res); err != nil || res.Error != "" {
				t.Errorf("bind result %s (%v)", body, err)
			}
			if apiPod(t, client, "p").Spec.NodeName != "n" {
				t.Errorf("pod not bound")
			}
		},
	}, {
		name: "not JSON", path: FilterPath, body: []byte("{pod"), status: http.StatusBadRequest,
		check: wantErrorField("decode extender args"),
	}, {
		name: "trailing data", path: FilterPath, body: append(bytes.Clone(filterBody), []byte(`{}`)...), status: http.StatusBadRequest,
		check: wantErrorField("trailing data"),
	}, {
		name: "no pod", path: FilterPath, body: []byte(`{"NodeNames":["n"]}`), status: http.StatusBadRequest,
		check: wantErrorField("no Pod"),
	}, {
		name: "no candidates", path: FilterPath, body: []byte(`{"Pod":{"metadata":{"name":"x"}}}`), status: http.StatusBadRequest,
		check: wantErrorField("no candidate nodes"),
	}, {
		name: "prioritize without pod", path: PrioritizePath, body: []byte(`{}`), status: http.StatusBadRequest,
	}, {
		name: "bind of a wrong type", path: BindPath, body: []byte(`{"PodName":7}`), status: http.StatusBadRequest,
		check: wantErrorField("decode binding args"),
	}, {
		name: "unknown verb", path: "/preempt", body: []byte(`{}`), status: http.StatusNotFound,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := post(t, h, tc.path, tc.body)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d; body %s", w.Code, tc.status, w.Body)
			}
			if tc.check != nil {
				tc.check(t, w.Body.Bytes())
			}
		})
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, HealthPath, nil))
	if w.Code != http.StatusOK {
		t.Errorf("healthz: %d", w.Code)
	}
}

func wantErrorField(fragment string) func(t *testing.T, body []byte) {
	return func(t *testing.T, body []byte) {
		t.Helper()
		var res struct{ Error string }
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatalf("error response %s is not JSON: %v", body, err)
		}
		if !strings.Contains(res.Error, fragment) {
			t.Errorf("Error = %q, want it to contain %q", res.Error, fragment)
		}
	}
}
