package env

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/test/install"
)

// Tessera's components run as the chart's own ServiceAccounts, never as
// admin: on each member the chart's RBAC objects are applied (rendered
// through deploy/chart, as `helm install` in kube-system with
// examples/member-estimator-access.yaml and dashboard.memberAccess would
// create them), and on the Karmada API server the dashboard's identity
// (dashboard.karmadaAccess). Each component's client holds a token of its
// ServiceAccount from the TokenRequest API. The environment's own work
// (workloads, reads for assertions, the simulated kubelet) stays admin.
const (
	memberNamespace  = "kube-system"    // the member release's namespace (docs/operations.md)
	karmadaNamespace = "karmada-system" // the Karmada side's
	agentAccount     = "tessera-node-agent"
	schedulerAccount = "tessera-scheduler" // the extender shares the scheduler pod's
	// readerAccount is the estimator's identity in a member: the subject
	// of examples/member-estimator-access.yaml, which a person creates
	// (docs/operations.md) and the chart binds.
	readerAccount    = "tessera-estimator-reader"
	dashboardAccount = "tessera-dashboard"
)

// Tokens live tokenLifetime and are renewed every tokenRenewal, so that an
// environment kept running (make demo KEEP=1) never loses its identities.
const (
	tokenLifetime = 2 * time.Hour
	tokenRenewal  = time.Hour
)

// rbacKinds are the chart's objects the environment applies; its
// workloads run in process instead, and the dashboard's token Secret is
// replaced by TokenRequest tokens.
var rbacKinds = []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}

// identity is one ServiceAccount that components run as: its token in a
// file that the environment renews and every client of it reads.
type identity struct {
	namespace, name string
	admin           *rest.Config // of its API server, to ask for tokens
	tokenFile       string
}

// User is the identity as the API server names it.
func (id *identity) User() string { return install.Identity(id.namespace, id.name) }

// renew asks for a fresh token and replaces the file at once (a rename),
// so that no client reads half a token.
func (id *identity) renew(ctx context.Context) error {
	token, _, err := install.ServiceAccountToken(ctx, id.admin, id.namespace, id.name, tokenLifetime)
	if err != nil {
		return err
	}
	tmp := id.tokenFile + ".new"
	if err := os.WriteFile(tmp, []byte(token), 0o600); err != nil {
		return fmt.Errorf("token of %s: %w", id.User(), err)
	}
	if err := os.Rename(tmp, id.tokenFile); err != nil {
		return fmt.Errorf("token of %s: %w", id.User(), err)
	}
	return nil
}

// check asks the API server who the token is (a SelfSubjectReview), so
// that the identity the environment logs is the one the server sees.
func (id *identity) check(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(install.TokenFileConfig(id.admin, id.tokenFile))
	if err != nil {
		return fmt.Errorf("client of %s: %w", id.User(), err)
	}
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("who is the token of %s: %w", id.User(), err)
	}
	if got := review.Status.UserInfo.Username; got != id.User() {
		return fmt.Errorf("the token of %s authenticates as %q", id.User(), got)
	}
	return nil
}

// identities are every identity of the environment and the refusals their
// clients met.
type identities struct {
	dir      string
	refusals refusals
	cancel   context.CancelFunc
	done     chan struct{}

	mu          sync.Mutex
	all         []*identity
	processLogs []string // see ProcessLog
}

// newIdentities starts the renewal of every identity added later; stop
// ends it.
func newIdentities(dir string, logf func(string, ...any)) *identities {
	ctx, cancel := context.WithCancel(context.Background())
	ids := &identities{dir: dir, cancel: cancel, done: make(chan struct{})}
	go ids.renewEvery(ctx, tokenRenewal, logf)
	return ids
}

// add creates the identity's first token.
func (ids *identities) add(ctx context.Context, admin *rest.Config, where, namespace, name string) (*identity, error) {
	if err := os.MkdirAll(ids.dir, 0o700); err != nil {
		return nil, fmt.Errorf("token directory: %w", err)
	}
	id := &identity{namespace: namespace, name: name, admin: rest.CopyConfig(admin),
		tokenFile: filepath.Join(ids.dir, where+"-"+namespace+"-"+name+".token")}
	if err := id.renew(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err := id.check(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	ids.mu.Lock()
	ids.all = append(ids.all, id)
	ids.mu.Unlock()
	return id, nil
}

// renewEvery renews every identity each period until ctx ends. Its first
// round, at once, finds none: newIdentities runs before any add.
func (ids *identities) renewEvery(ctx context.Context, every time.Duration, logf func(string, ...any)) {
	defer close(ids.done)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		ids.mu.Lock()
		all := slices.Clone(ids.all)
		ids.mu.Unlock()
		for _, id := range all {
			if err := id.renew(ctx); err != nil && ctx.Err() == nil {
				logf("environment: renew the token of %s: %v", id.User(), err)
			}
		}
	}, every)
}

func (ids *identities) stop() {
	ids.cancel()
	<-ids.done
}

// config is a client configuration of the identity for component: its
// token alone, rate limits loose enough for a test, a user agent naming
// the component, and every refusal recorded.
func (ids *identities) config(id *identity, component string) *rest.Config {
	cfg := install.TokenFileConfig(id.admin, id.tokenFile)
	cfg.QPS, cfg.Burst = 100, 200
	cfg.UserAgent = component
	cfg.Wrap(ids.refusals.wrap(component))
	return cfg
}

// kubeconfig writes a kubeconfig of the identity (its token file) for a
// component that takes one, and returns its path.
func (ids *identities) kubeconfig(id *identity, name string) (string, error) {
	data, err := install.TokenFileKubeconfig(id.admin.Host, id.admin.CAData, id.tokenFile)
	if err != nil {
		return "", fmt.Errorf("kubeconfig of %s: %w", id.User(), err)
	}
	path := filepath.Join(ids.dir, name+".kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("kubeconfig of %s: %w", id.User(), err)
	}
	return path, nil
}

// memberIdentities are what a member's components run as.
type memberIdentities struct {
	agent, extender, estimator *identity
}

// memberRelease is the member's install with the values the environment's
// configuration corresponds to: its Tessera configuration, read access for
// the estimator's identity, and Karmada's proxy's for the dashboard's.
func (e *Env) memberRelease() (install.Release, error) {
	data, err := yaml.Marshal(e.cfg)
	if err != nil {
		return install.Release{}, fmt.Errorf("encode Tessera configuration: %w", err)
	}
	config := map[string]any{}
	if err := yaml.Unmarshal(data, &config); err != nil {
		return install.Release{}, fmt.Errorf("decode Tessera configuration as values: %w", err)
	}
	return install.Release{Namespace: memberNamespace, ValuesFiles: []string{"examples/member-estimator-access.yaml"},
		Values: map[string]any{"config": config, "dashboard": map[string]any{"memberAccess": map[string]any{"enabled": true}}}}, nil
}

// installMember applies the chart's RBAC objects to the member, creates
// the estimator's reader identity as a person would, and gives each
// component its ServiceAccount's token.
func (e *Env) installMember(ctx context.Context, m *Member) error {
	r, err := e.memberRelease()
	if err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	admin := m.cluster.RESTConfig()
	objs, err := e.applyRBAC(ctx, m.name, admin, r)
	if err != nil {
		return err
	}
	reader := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: memberNamespace, Name: readerAccount}}
	if _, err := m.Client().CoreV1().ServiceAccounts(memberNamespace).Create(ctx, reader, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%s: create the estimator's identity %s: %w", m.name, install.Identity(memberNamespace, readerAccount), err)
	}
	for _, sa := range []string{agentAccount, schedulerAccount} {
		if install.Find(objs, "ServiceAccount", sa) == nil {
			return fmt.Errorf("%s: the chart renders no ServiceAccount %s/%s", m.name, memberNamespace, sa)
		}
	}
	if m.ids.agent, err = e.ids.add(ctx, admin, m.name, memberNamespace, agentAccount); err != nil {
		return err
	}
	if m.ids.extender, err = e.ids.add(ctx, admin, m.name, memberNamespace, schedulerAccount); err != nil {
		return err
	}
	if m.ids.estimator, err = e.ids.add(ctx, admin, m.name, memberNamespace, readerAccount); err != nil {
		return err
	}
	e.logf("%s: node agents run as %s, the extender as %s, the estimator as %s (TokenRequest tokens, each confirmed by a SelfSubjectReview, renewed every %s)",
		m.name, m.ids.agent.User(), m.ids.extender.User(), m.ids.estimator.User(), tokenRenewal)
	return nil
}

// installDashboard applies the dashboard's identity to the Karmada API
// server and writes its kubeconfig, for the fleet CLI and page.
func (e *Env) installDashboard(ctx context.Context) error {
	admin := e.karmada.RESTConfig()
	r := install.Release{Namespace: karmadaNamespace, Values: map[string]any{
		"nodeAgent": map[string]any{"enabled": false}, "scheduler": map[string]any{"enabled": false},
		"dashboard": map[string]any{"karmadaAccess": map[string]any{"enabled": true}},
	}}
	objs, err := e.applyRBAC(ctx, "karmada-apiserver", admin, r)
	if err != nil {
		return err
	}
	if install.Find(objs, "ServiceAccount", dashboardAccount) == nil {
		return fmt.Errorf("karmada-apiserver: the chart renders no ServiceAccount %s/%s", karmadaNamespace, dashboardAccount)
	}
	id, err := e.ids.add(ctx, admin, "karmada", karmadaNamespace, dashboardAccount)
	if err != nil {
		return err
	}
	if e.dashboardKubeconfig, err = e.ids.kubeconfig(id, "karmada-dashboard"); err != nil {
		return err
	}
	e.logf("karmada: the fleet CLI and page run as %s (in karmada-apiserver, and impersonated by its cluster proxy in each member)", id.User())
	return nil
}

// applyRBAC renders the release and server-side applies its RBAC objects.
func (e *Env) applyRBAC(ctx context.Context, where string, admin *rest.Config, r install.Release) ([]*unstructured.Unstructured, error) {
	objs, err := install.Render(r)
	if err != nil {
		return nil, fmt.Errorf("%s: render the chart: %w", where, err)
	}
	objs = slices.DeleteFunc(objs, func(u *unstructured.Unstructured) bool { return !slices.Contains(rbacKinds, u.GetKind()) })
	in, err := install.NewInstaller(where, admin)
	if err != nil {
		return nil, err
	}
	if _, err := in.Apply(ctx, objs); err != nil {
		return nil, err
	}
	e.logf("%s: applied the chart's RBAC: %s", where, install.Keys(objs))
	return objs, nil
}

// DashboardKubeconfig is a kubeconfig of the Karmada API server as the
// chart's dashboard identity: what the fleet CLI and page run with.
func (e *Env) DashboardKubeconfig() string { return e.dashboardKubeconfig }

// ProcessLog is where a Tessera process that a test starts (the fleet
// page) writes its log: the environment reads it for refusals at Stop.
func (e *Env) ProcessLog(name string) (string, error) {
	path := filepath.Join(e.dir, "processes", name+".log")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("log of %s: %w", name, err)
	}
	e.ids.mu.Lock()
	defer e.ids.mu.Unlock()
	if !slices.Contains(e.ids.processLogs, path) {
		e.ids.processLogs = append(e.ids.processLogs, path)
	}
	return path, nil
}

// Refusals are the 403 answers Tessera's components' clients have received
// so far, one line each naming the component, identity, verb and resource.
func (e *Env) Refusals() []string { return e.ids.refusals.lines() }

// checkRefusals fails the test when the API server refused any Tessera
// component a request: a permission its code needs and the chart lacks.
// Each line names the component, the identity, the verb and the resource.
func (e *Env) checkRefusals() error {
	lines := e.ids.refusals.lines()
	e.ids.mu.Lock()
	logs := slices.Clone(e.ids.processLogs)
	e.ids.mu.Unlock()
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			lines = append(lines, fmt.Sprintf("read %s: %v", path, err))
			continue
		}
		for _, d := range install.ParseDenials(string(data)) {
			lines = append(lines, fmt.Sprintf("%s: %s", filepath.Base(path), d))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	return fmt.Errorf("Tessera components were forbidden what their code needs and the chart does not grant:\n  %s", strings.Join(lines, "\n  "))
}
