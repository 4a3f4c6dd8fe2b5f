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

// checkRejectedFlag shows that a flag the manifest passed and the binary
// does not know fails a launch: the node agent's container with one more
// argument exits at once, and the log says which flag.
func checkRejectedFlag(ctx context.Context, t *testing.T, l install.Launcher, cs []install.Container, kubeconfig string) {
	t.Helper()
	c, err := install.FindContainer(cs, "DaemonSet/kube-system/tessera-node-agent", "node-agent")
	if err != nil {
		t.Fatal(err)
	}
	c.Spec.Args = append(c.Spec.Args, "--no-such-flag=1")
	r, err := l.Launch(ctx, c, loopbackOverrides(t, "node-agent", kubeconfig, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop(stopGrace)
	err = env.Eventually(ctx, startTimeout, "the node agent to reject --no-such-flag", func(ctx context.Context) (bool, string, error) {
		done, _ := r.Process.Exited()
		return done, "still running", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if tail := r.Process.LogTail(); !strings.Contains(tail, "no-such-flag") {
		t.Errorf("the node agent exited without naming the flag; log:\n%s", tail)
	}
	t.Logf("a flag the binary does not know stops it at once: %s", lastLine(r.Process.LogTail()))
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
