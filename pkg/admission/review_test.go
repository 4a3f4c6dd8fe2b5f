package admission

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// reviewOf wraps a pod (or raw object bytes) in an AdmissionReview request.
func reviewOf(t testing.TB, op admissionv1.Operation, resource metav1.GroupVersionResource, object any) []byte {
	t.Helper()
	raw, ok := object.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(object); err != nil {
			t.Fatal(err)
		}
	}
	body, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Operation: op, Resource: resource, Namespace: "ns", Name: "p",
			Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, Object: runtime.RawExtension{Raw: raw},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func hamiPod() *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", GenerateName: "train-"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr("app", limits(config.HAMiMemory, "10240"), nil)}},
	}
}

func TestReview(t *testing.T) {
	cfg := parseConfig(t, "compat: hami")
	pods := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	tests := []struct {
		name string
		body []byte
		// wantErr: Review fails (the handler answers 400); else the response.
		wantErr     string
		wantAllowed bool
		wantPatch   string
		wantMessage string
	}{
		{
			name:        "a HAMi pod is patched",
			body:        reviewOf(t, admissionv1.Create, pods, hamiPod()),
			wantAllowed: true,
			wantPatch:   `[{"op":"add","path":"/spec/containers/0/resources/limits/nvidia.com~1gpu","value":"1"}]`,
		},
		{
			name:        "an ordinary pod is allowed unchanged",
			body:        reviewOf(t, admissionv1.Create, pods, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{ctr("app", limits("cpu", "1"), nil)}}}),
			wantAllowed: true,
		},
		{
			name:        "an update is allowed unchanged: limits cannot be added to a pod",
			body:        reviewOf(t, admissionv1.Update, pods, hamiPod()),
			wantAllowed: true,
		},
		{
			name:        "another resource is allowed unchanged",
			body:        reviewOf(t, admissionv1.Create, metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, []byte(`{}`)),
			wantAllowed: true,
		},
		{
			name:        "a pod that does not decode is refused with the reason",
			body:        reviewOf(t, admissionv1.Create, pods, []byte(`{"spec": {"containers": "many"}}`)),
			wantMessage: "tessera admission webhook: decode pod ns/p: json: cannot unmarshal string",
		},
		{name: "not JSON", body: []byte("<xml/>"), wantErr: "decode AdmissionReview"},
		{name: "another kind", body: []byte(`{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "x"}}`), wantErr: `apiVersion "admission.k8s.io/v1beta1"`},
		{name: "no request", body: []byte(`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}`), wantErr: "no request"},
		{name: "no uid", body: []byte(`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {}}`), wantErr: "no uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Review(tt.body, cfg, klog.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || r == nil || r.UID != "uid-1" {
				t.Fatalf("response %+v: want an admission.k8s.io/v1 AdmissionReview answering uid-1", out)
			}
			if r.Allowed != tt.wantAllowed || string(r.Patch) != tt.wantPatch {
				t.Errorf("allowed %v patch %s; want %v %s", r.Allowed, r.Patch, tt.wantAllowed, tt.wantPatch)
			}
			if (r.PatchType != nil) != (tt.wantPatch != "") || (r.PatchType != nil && *r.PatchType != admissionv1.PatchTypeJSONPatch) {
				t.Errorf("patchType %v with patch %q", r.PatchType, r.Patch)
			}
			if tt.wantMessage != "" && (r.Result == nil || r.Result.Code != http.StatusBadRequest || !strings.Contains(r.Result.Message, tt.wantMessage)) {
				t.Errorf("result %+v, want code 400 and a message containing %q", r.Result, tt.wantMessage)
			}
		})
	}
}

func TestHandler(t *testing.T) {
	srv := httptest.NewServer(Handler(parseConfig(t, "compat: hami"), klog.Background()))
	defer srv.Close()
	tests := []struct {
		name, method, contentType string
		body                      []byte
		wantStatus                int
		wantBody                  string
	}{
		{"a review", http.MethodPost, "application/json", reviewOf(t, admissionv1.Create, metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, hamiPod()), http.StatusOK, `"patchType":"JSONPatch"`},
		{"GET", http.MethodGet, "", nil, http.StatusMethodNotAllowed, "POST an AdmissionReview"},
		{"wrong content type", http.MethodPost, "text/plain", []byte("{}"), http.StatusUnsupportedMediaType, `content type "text/plain"`},
		{"bad review", http.MethodPost, "application/json; charset=utf-8", []byte("{}"), http.StatusBadRequest, "decode AdmissionReview"},
		{"too large", http.MethodPost, "application/json", bytes.Repeat([]byte(" "), maxReviewBytes+1), http.StatusBadRequest, "read request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, srv.URL+MutatePodsPath, bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}
