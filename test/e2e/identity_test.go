package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// failureCatcher is the test as the environment sees it, with Errorf
// caught: the failure the environment reports is this test's point.
type failureCatcher struct {
	*testing.T
	mu     sync.Mutex
	caught []string
}

func (c *failureCatcher) Errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.caught = append(c.caught, fmt.Sprintf(format, args...))
}

// TestForbiddenRequestFailsTheRun: the components run as the chart's
// ServiceAccounts, so a verb cut from the extender's ClusterRole (patch on
// pods: the assignment annotation it writes at bind time) makes its next
// bind a 403, and the environment fails the test naming the component, the
// identity, the verb and the resource. Not pods/binding: the scheduler's
// ServiceAccount has that from system:kube-scheduler too.
func TestForbiddenRequestFailsTheRun(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	paths, err := cluster.Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	catcher := &failureCatcher{T: t}
	e, err := env.Start(ctx, env.Options{
		Members: []env.MemberSpec{{Name: "member-a", Nodes: []env.NodeSpec{{GPUs: []config.MockGPU{{Model: "A100-SXM4-40GB", Count: 1}}}}}},
		Paths:   paths, T: catcher, KeepDir: os.Getenv(keepEnv) != "",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	m := e.Member("member-a")
	roles := m.Client().RbacV1().ClusterRoles()
	role, err := roles.Get(ctx, "tessera-scheduler-extender", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cut := false
	for i, r := range role.Rules {
		if slices.Equal(r.Resources, []string{"pods"}) && slices.Contains(r.Verbs, "patch") {
			role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "patch" })
			cut = true
		}
	}
	if !cut {
		t.Fatalf("the chart's ClusterRole %s has no patch on pods: %+v", role.Name, role.Rules)
	}
	if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDenied(ctx, t, m, "system:serviceaccount:kube-system:tessera-scheduler", "patch", "pods")
	pod := env.GPUPod("default", "denied", "denied", env.GPURequest{GPUs: 1, MemoryMiB: 1024}, e.Config().Resources)
	if _, err := m.Client().CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const want = `member-a-extender: system:serviceaccount:kube-system:tessera-scheduler may not patch pods (API group "")`
	err = env.Eventually(ctx, podTimeout, "the extender's bind to be refused", func(ctx context.Context) (bool, string, error) {
		got := e.Refusals()
		return slices.Contains(got, want), strings.Join(got, "; "), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Stop()
	if err := e.StopErr(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("StopErr() = %v, want one naming %q", err, want)
	}
	catcher.mu.Lock()
	defer catcher.mu.Unlock()
	if len(catcher.caught) != 1 || !strings.Contains(catcher.caught[0], want) {
		t.Errorf("the environment failed the test with %q, want once with %q", catcher.caught, want)
	}
	t.Logf("the environment failed the run with: %s", strings.Join(catcher.caught, "\n"))
	// Stop kept the directory for the refusal, which was the point here.
	if !t.Failed() && os.Getenv(keepEnv) == "" {
		if err := os.RemoveAll(e.Dir()); err != nil {
			t.Error(err)
		}
	}
}

// waitDenied waits until the member's authorizer refuses user (a
// ServiceAccount of kube-system, with its groups) verb on resource: RBAC
// changes reach it through an informer, a moment later.
func waitDenied(ctx context.Context, t *testing.T, m *env.Member, user, verb, resource string) {
	t.Helper()
	err := env.Eventually(ctx, podTimeout, fmt.Sprintf("%s to be refused %s %s", user, verb, resource), func(ctx context.Context) (bool, string, error) {
		review, err := m.Client().AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: user, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: resource, Namespace: "default"},
		}}, metav1.CreateOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		return !review.Status.Allowed, review.Status.Reason, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
