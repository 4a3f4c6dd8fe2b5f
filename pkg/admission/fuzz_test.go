package admission

import (
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	kjson "sigs.k8s.io/json"
)

// FuzzReview feeds arbitrary bodies to the admission decoder. It must never
// panic; a body it answers gets a response for the request's uid; a patch it
// returns applies to the pod it was given, and the patched pod needs no
// further patch (idempotence).
func FuzzReview(f *testing.F) {
	pods := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	for _, seed := range [][]byte{
		reviewOf(f, admissionv1.Create, pods, hamiPod()),
		reviewOf(f, admissionv1.Create, pods, []byte(`{"spec":{"initContainers":[{"name":"i","resources":{"limits":{"nvidia.com/gpucores":"5"}}}],"containers":[{"name":"a","resources":{"limits":{"nvidia.com/gpumem-percentage":"50","nvidia.com/gpu":"2"}}}]}}`)),
		reviewOf(f, admissionv1.Create, pods, []byte(`{"spec":{"containers":[{"name":"a","resources":{"limits":{"nvidia.com/gpumem":"-1"}}}]}}`)),
		reviewOf(f, admissionv1.Create, pods, []byte(`{"spec":{"containers":[{"name":"a","resources":{"requests":{"nvidia.com/gpumem":"1"}}}]}}`)),
		reviewOf(f, admissionv1.Create, pods, []byte(`null`)),
		reviewOf(f, admissionv1.Update, pods, hamiPod()),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","object":{"spec":{"containers":[{"resources":{"limits":{"nvidia.com/gpumem":"1e3"}}}]}}}}`),
		[]byte(`{}`),
		[]byte(`[`),
	} {
		f.Add(seed)
	}
	cfg := parseConfig(f, "compat: hami\nhami: {defaultGPUNum: 2}")
	f.Fuzz(func(t *testing.T, body []byte) {
		out, err := Review(body, cfg, klog.Background())
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		var in admissionv1.AdmissionReview
		if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &in); err != nil {
			t.Fatalf("Review answered a body that does not decode: %v", err)
		}
		r := out.Response
		if r == nil || r.UID != in.Request.UID {
			t.Fatalf("response %+v does not answer uid %q", r, in.Request.UID)
		}
		if !r.Allowed && (r.Result == nil || r.Result.Message == "") {
			t.Fatalf("refused without a reason: %+v", r)
		}
		if len(r.Patch) == 0 {
			return
		}
		patch, err := jsonpatch.DecodePatch(r.Patch)
		if err != nil {
			t.Fatalf("patch %s: %v", r.Patch, err)
		}
		patched, err := patch.Apply(in.Request.Object.Raw)
		if err != nil {
			t.Fatalf("patch %s does not apply to %s: %v", r.Patch, in.Request.Object.Raw, err)
		}
		var pod corev1.Pod
		if err := kjson.UnmarshalCaseSensitivePreserveInts(patched, &pod); err != nil {
			t.Fatalf("patched pod %s: %v", patched, err)
		}
		if again := Mutate(&pod, cfg); len(again.Patch) != 0 {
			t.Fatalf("patched pod %s patched again: %+v", patched, again.Patch)
		}
	})
}
