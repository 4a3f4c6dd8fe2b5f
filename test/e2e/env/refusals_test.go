package env

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// TestRefusalsRecordForbiddenAnswers runs a real client-go client through
// the recorder against a server that answers as kube-apiserver does: a
// 403 names the user, verb and resource; the client still sees the
// forbidden error; other answers are not recorded.
func TestRefusalsRecordForbiddenAnswers(t *testing.T) {
	const forbiddenNodes = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
		`"message":"nodes is forbidden: User \"system:serviceaccount:kube-system:tessera-node-agent\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",` +
		`"reason":"Forbidden","details":{"kind":"nodes"},"code":403}`
	tests := []struct {
		name      string
		status    int
		body      string
		want      []string
		forbidden bool
	}{
		{name: "the API server's forbidden answer", status: http.StatusForbidden, body: forbiddenNodes, forbidden: true,
			want: []string{`member1-agent: system:serviceaccount:kube-system:tessera-node-agent may not list nodes (API group "")`}},
		{name: "a 403 without a Status", status: http.StatusForbidden, body: "denied by a proxy", forbidden: true,
			want: []string{"member1-agent: refused GET /api/v1/nodes: denied by a proxy"}},
		{name: "not found", status: http.StatusNotFound, body: `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			var r refusals
			cfg := &rest.Config{Host: srv.URL}
			cfg.Wrap(r.wrap("member1-agent", nil))
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			if err == nil {
				t.Fatal("list answered without an error")
			}
			if got := apierrors.IsForbidden(err); got != tt.forbidden {
				t.Errorf("the client's error %v: forbidden %t, want %t", err, got, tt.forbidden)
			}
			if got := r.lines(); !slices.Equal(got, tt.want) {
				t.Errorf("recorded %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRefusalsFromProcessOutput: a forbidden answer that a process prints
// is recorded once, however often it repeats.
func TestRefusalsFromProcessOutput(t *testing.T) {
	var r refusals
	out := `member2  unreachable  nodes is forbidden: User "system:serviceaccount:karmada-system:tessera-dashboard" cannot list resource "nodes" in API group "" at the cluster scope
member2  unreachable  nodes is forbidden: User "system:serviceaccount:karmada-system:tessera-dashboard" cannot list resource "nodes" in API group "" at the cluster scope`
	if !r.addText("tessera fleet", out) {
		t.Fatal("addText found no refusal")
	}
	if r.addText("tessera fleet", "member1  Ready  8 GPUs") {
		t.Error("addText found a refusal in output without one")
	}
	want := []string{`tessera fleet: system:serviceaccount:karmada-system:tessera-dashboard may not list nodes (API group "")`}
	if got := r.lines(); !slices.Equal(got, want) {
		t.Errorf("recorded %q, want %q", got, want)
	}
}

// TestRefusalsCheckedAgain: at the end each refusal is asked again of the
// API server that gave it (a SubjectAccessReview for the same user, verb,
// resource and namespace). One it allows now was a kube-apiserver starting
// (its RBAC authorizer not yet loaded) and is only logged; one it still
// denies, or one whose server is unknown, fails the run.
func TestRefusalsCheckedAgain(t *testing.T) {
	const forbiddenLeases = `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,` +
		`"message":"leases.coordination.k8s.io is forbidden: User \"system:serviceaccount:kube-system:tessera-scheduler\" cannot watch resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-system\""}`
	const line = `member1-extender: system:serviceaccount:kube-system:tessera-scheduler may not watch leases (API group "coordination.k8s.io")`
	tests := []struct {
		name          string
		allowedNow    bool
		knownServer   bool
		wantLasting   []string
		wantTransient []string
	}{
		{name: "allowed now: the server was starting", allowedNow: true, knownServer: true, wantTransient: []string{line}},
		{name: "still denied", knownServer: true, wantLasting: []string{line}},
		{name: "server unknown", allowedNow: true, wantLasting: []string{line}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var review authorizationv1.SubjectAccessReview
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/subjectaccessreviews") {
					// client-go sends built-in kinds as protobuf or JSON.
					body, err := io.ReadAll(r.Body)
					if err == nil {
						_, _, err = scheme.Codecs.UniversalDeserializer().Decode(body, nil, &review)
					}
					if err != nil {
						t.Errorf("decode the review: %v", err)
					}
					review.Status.Allowed = tt.allowedNow
					_ = json.NewEncoder(w).Encode(&review)
					return
				}
				w.WriteHeader(http.StatusForbidden)
				_, _ = io.WriteString(w, forbiddenLeases)
			}))
			defer srv.Close()
			var r refusals
			admin := &rest.Config{Host: srv.URL}
			var server *rest.Config
			if tt.knownServer {
				server = admin
			}
			cfg := &rest.Config{Host: srv.URL}
			cfg.Wrap(r.wrap("member1-extender", server))
			client, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := client.CoordinationV1().Leases("kube-system").Watch(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
				t.Fatalf("watch: %v, want forbidden", err)
			}
			var transient []string
			lasting := r.lasting(context.Background(), func(l string) { transient = append(transient, l) })
			if !slices.Equal(lasting, tt.wantLasting) || !slices.Equal(transient, tt.wantTransient) {
				t.Errorf("lasting %q, transient %q; want %q, %q", lasting, transient, tt.wantLasting, tt.wantTransient)
			}
			if tt.knownServer {
				a := review.Spec.ResourceAttributes
				if review.Spec.User != "system:serviceaccount:kube-system:tessera-scheduler" || a == nil ||
					a.Verb != "watch" || a.Resource != "leases" || a.Group != "coordination.k8s.io" || a.Namespace != "kube-system" {
					t.Errorf("asked again %+v %+v, want the refused request", review.Spec, a)
				}
			}
		})
	}
}
