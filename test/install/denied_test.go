package install_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tessera-gpu/tessera/test/e2e/env"
	"github.com/tessera-gpu/tessera/test/install"
)

// deniedCase is a rule cut from a component's ClusterRole in the member.
type deniedCase struct {
	role, resource, verb string
	identity             string // the ServiceAccount the component runs as
	stop                 *install.Running
	before               func() // makes the component need the rule again; may be nil
	launch               func() *install.Running
}

// checkDenied applies the member's ClusterRole c.role without c.verb on
// c.resource, replaces the running component by a new process, checks that
// its run fails naming that verb and resource and the identity, and
// restores the role.
func checkDenied(ctx context.Context, t *testing.T, member *install.Installer, role *unstructured.Unstructured, c deniedCase) {
	t.Helper()
	cut, err := withoutRule(role, c.resource, c.verb)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := member.Apply(ctx, []*unstructured.Unstructured{cut}); err != nil {
		t.Fatal(err)
	}
	c.stop.Stop(stopGrace)
	if c.before != nil {
		c.before()
	}
	r := c.launch()
	defer r.Stop(stopGrace)
	what := c.verb + " on " + c.resource
	err = env.Eventually(ctx, startTimeout, r.Container.Name()+" to be refused "+what, func(ctx context.Context) (bool, string, error) {
		return r.CheckPermissions() != nil, "no denial yet", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	msg := r.CheckPermissions().Error()
	if !strings.Contains(msg, c.identity+" may not "+c.verb+" "+c.resource+" ") {
		t.Errorf("the denial says %q, want %s refused %s", msg, c.identity, what)
	}
	t.Logf("without %s in ClusterRole %s, the run fails with: %s", what, c.role, msg)
	if _, err := member.Apply(ctx, []*unstructured.Unstructured{role}); err != nil {
		t.Fatal(err)
	}
}
