package admission

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	kjson "sigs.k8s.io/json"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// MutatePodsPath is where the API server calls the webhook (the chart's
// MutatingWebhookConfiguration names it).
const MutatePodsPath = "/mutate-pods"

// maxReviewBytes bounds a request body: a pod is at most etcd's 1.5 MiB
// object limit, and the review wraps it once.
const maxReviewBytes = 8 << 20

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Review answers one AdmissionReview (admission.k8s.io/v1). A body that is
// not an AdmissionReview with a request is an error (the caller answers
// HTTP 400: there is no request to answer). A review of anything but the
// creation of a pod is allowed unchanged. A pod that cannot be decoded is
// refused with a response that says why, as HAMi's webhook refuses it.
func Review(body []byte, cfg config.Config, logger klog.Logger) (*admissionv1.AdmissionReview, error) {
	var in admissionv1.AdmissionReview
	// Case-sensitive, as the API server decodes: encoding/json would take
	// "speC" for "spec", and a patch of "/spec/..." would then not apply.
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
		return nil, fmt.Errorf("decode AdmissionReview: %w", err)
	}
	if gv := admissionv1.SchemeGroupVersion.String(); in.APIVersion != gv || in.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("decode AdmissionReview: apiVersion %q kind %q, want %s AdmissionReview", in.APIVersion, in.Kind, gv)
	}
	req := in.Request
	if req == nil || req.UID == "" {
		return nil, errors.New("decode AdmissionReview: it has no request, or the request no uid")
	}
	out := &admissionv1.AdmissionReview{TypeMeta: in.TypeMeta}
	out.Response = review(req, cfg, logger)
	out.Response.UID = req.UID
	return out, nil
}

func review(req *admissionv1.AdmissionRequest, cfg config.Config, logger klog.Logger) *admissionv1.AdmissionResponse {
	if req.Resource != podResource || req.SubResource != "" || req.Operation != admissionv1.Create {
		// Only a new pod may be given limits: a pod's resources cannot
		// be added to afterwards.
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &pod); err != nil {
		msg := fmt.Sprintf("tessera admission webhook: decode pod %s/%s: %v", req.Namespace, req.Name, err)
		logger.Error(err, "Refusing a pod that cannot be decoded", "namespace", req.Namespace, "name", req.Name, "uid", req.UID)
		return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusBadRequest, Reason: metav1.StatusReasonBadRequest, Message: msg,
		}}
	}
	// A pod created from a template has no name yet.
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "*"
	}
	podRef := klog.KRef(req.Namespace, name)
	m := Mutate(&pod, cfg)
	resp := &admissionv1.AdmissionResponse{Allowed: true, Warnings: m.Warnings}
	for _, w := range m.Warnings {
		logger.Info("Left a container unchanged", "pod", podRef, "reason", w)
	}
	if len(m.Patch) == 0 {
		return resp
	}
	patch, err := json.Marshal(m.Patch)
	if err != nil {
		// A list of string triples always marshals; refuse rather than
		// admit a pod that would run without its GPUs.
		logger.Error(err, "Encode patch", "pod", podRef)
		return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusInternalServerError, Message: fmt.Sprintf("tessera admission webhook: encode patch of pod %s: %v", podRef, err),
		}}
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	logger.V(2).Info("Adding nvidia.com/gpu to containers that ask for HAMi's memory or cores", "pod", podRef, "patch", string(patch))
	return resp
}

// Handler serves Review at MutatePodsPath.
func Handler(cfg config.Config, logger klog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(MutatePodsPath, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "tessera admission webhook: POST an AdmissionReview", http.StatusMethodNotAllowed)
			return
		}
		if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/json" {
			http.Error(w, fmt.Sprintf("tessera admission webhook: content type %q, want application/json", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReviewBytes))
		if err != nil {
			http.Error(w, fmt.Sprintf("tessera admission webhook: read request: %v", err), http.StatusBadRequest)
			return
		}
		out, err := Review(body, cfg, logger)
		if err != nil {
			logger.Error(err, "Bad admission request", "remote", r.RemoteAddr)
			http.Error(w, "tessera admission webhook: "+err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := json.Marshal(out)
		if err != nil {
			http.Error(w, fmt.Sprintf("tessera admission webhook: encode response: %v", err), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if _, err := w.Write(resp); err != nil {
			logger.V(2).Info("Write admission response", "err", err)
		}
	})
	return mux
}
