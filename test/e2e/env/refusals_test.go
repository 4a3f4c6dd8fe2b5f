package env

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
			cfg.Wrap(r.wrap("member1-agent"))
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
