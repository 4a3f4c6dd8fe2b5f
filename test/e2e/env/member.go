package env

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	extenderapp "github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app"
	extenderoptions "github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app/options"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// schedulerConfigFile is the shipped kube-scheduler configuration that
// extends the default scheduler with Tessera's extender; the members run
// it as shipped, with only the extender's port changed.
const schedulerConfigFile = "deploy/scheduler/default-scheduler-config.yaml"

// shippedExtenderURL is the extender address in schedulerConfigFile.
const shippedExtenderURL = "urlPrefix: http://127.0.0.1:8888"

// Member is one running member cluster and its in-process Tessera components.
type Member struct {
	env     *Env
	name    string
	cluster *cluster.Member
	nodes   []*Node
	ids     memberIdentities // what its components run as (identity.go)

	extender     *component // nil while stopped; guarded by mu once started
	extenderAddr string     // kube-scheduler's configuration names it: a restart listens there again
	webhook      *component // nil unless compat: hami

	mu             sync.Mutex
	estimator      *component // nil once stopped
	estimatorPort  int        // kept after a stop: a restart listens there again
	estimatorConns *countingListener
	metricsPort    int // the estimator's /metrics; kept after a stop like estimatorPort
}

// Name is the member's Karmada Cluster name.
func (m *Member) Name() string { return m.name }

// Cluster is the member's servers.
func (m *Member) Cluster() *cluster.Member { return m.cluster }

// Client is an admin client of the member's kube-apiserver.
func (m *Member) Client() kubernetes.Interface { return m.cluster.Client() }

// Nodes are the member's GPU nodes.
func (m *Member) Nodes() []*Node { return append([]*Node(nil), m.nodes...) }

// Node returns the node called name, or nil.
func (m *Member) Node(name string) *Node {
	for _, n := range m.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// EstimatorAddress is where Tessera's estimator for the member serves
// gRPC, "" after StopEstimator. In stock mode it serves but Karmada does
// not know it.
func (m *Member) EstimatorAddress() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.estimator == nil {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", m.estimatorPort)
}

// MetricsAddress is where Tessera's estimator for the member serves its
// Prometheus metrics (http://<address>/metrics), "" after StopEstimator.
func (m *Member) MetricsAddress() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.estimator == nil {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", m.metricsPort)
}

// StopEstimator stops Tessera's estimator of the member, as if its pod had
// died: its port closes and karmada-scheduler's calls to it fail. The
// Service still points at the port.
func (m *Member) StopEstimator() error {
	m.mu.Lock()
	est := m.estimator
	m.estimator = nil
	m.mu.Unlock()
	if est == nil {
		return fmt.Errorf("member %s has no running estimator", m.name)
	}
	return est.stop()
}

// RestartEstimator starts Tessera's estimator of the member again on the
// port it had, after StopEstimator. karmada-scheduler keeps its gRPC
// connection object across the outage and reconnects on its own schedule.
func (m *Member) RestartEstimator(ctx context.Context) error {
	m.mu.Lock()
	running, env := m.estimator != nil, m.env
	m.mu.Unlock()
	if running {
		return fmt.Errorf("restart estimator of %s: it is running", m.name)
	}
	return env.startEstimator(ctx, m)
}

// EstimatorConnections is how many connections the member's estimator has
// accepted since it last started: karmada-scheduler's, and one per
// Estimates call.
func (m *Member) EstimatorConnections() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.estimatorConns == nil {
		return 0
	}
	return m.estimatorConns.accepted.Load()
}

// startMember starts the member's servers, its nodes (agent and kubelet
// each), its extender and, in Tessera mode, its estimator. It returns the
// member even on error, so that Stop can stop what was started.
func (e *Env) startMember(ctx context.Context, spec MemberSpec) (*Member, error) {
	m := &Member{name: spec.Name, env: e}
	start := time.Now()
	// The extender's port is held from before kube-scheduler is told to
	// call it until the extender serves it: the servers of every member
	// start meanwhile, and a port closed here could be theirs by then.
	ports := &cluster.HeldPorts{}
	extenderAddr, err := ports.Hold()
	if err != nil {
		return m, err
	}
	schedConfig, err := memberSchedulerConfig(extenderAddr, e.cfg.PodResources())
	if err != nil {
		return m, errors.Join(err, ports.Close())
	}
	m.cluster, err = cluster.StartMember(ctx, cluster.Options{
		Name: spec.Name, Paths: e.opts.Paths,
		ControllerManager: true, Scheduler: true, SchedulerConfig: schedConfig,
		Dir: e.dir, KeepDir: e.opts.KeepDir, StartTimeout: e.opts.StartTimeout, T: e.opts.T,
	})
	if err != nil {
		return m, errors.Join(err, ports.Close())
	}
	e.logf("%s: servers ready after %s", spec.Name, time.Since(start).Round(time.Millisecond))
	if err := e.installMember(ctx, m); err != nil {
		return m, errors.Join(err, ports.Close())
	}

	m.extenderAddr = extenderAddr
	if m.extender, err = e.startExtender(ctx, m, ports, extenderAddr); err != nil {
		return m, err
	}
	if m.webhook, err = e.startWebhook(ctx, m); err != nil {
		return m, err
	}
	for i := range spec.Nodes {
		n, err := e.startNode(ctx, m, nodeName(spec, i), spec.Nodes[i])
		if n != nil {
			m.nodes = append(m.nodes, n)
		}
		if err != nil {
			return m, err
		}
	}
	// In stock mode the estimator runs too, unknown to Karmada, so that a
	// report can say what it would have answered.
	if err := e.startEstimator(ctx, m); err != nil {
		return m, err
	}
	what := "extender and Tessera's estimator"
	if e.opts.Estimator == EstimatorStock {
		what = "extender and Tessera's estimator (not known to Karmada: stock mode)"
	}
	e.logf("%s: %d node(s) with %d GPUs, %s ready after %s", spec.Name, len(m.nodes), m.gpuCount(), what, time.Since(start).Round(time.Millisecond))
	return m, nil
}

func (m *Member) gpuCount() int {
	n := 0
	for _, node := range m.nodes {
		n += len(node.gpus)
	}
	return n
}

// stopComponents stops the member's in-process components, estimator
// first (it only reads) and kubelets last (pods keep their state).
func (m *Member) stopComponents() []error {
	var errs []error
	m.mu.Lock()
	est, ext := m.estimator, m.extender
	m.estimator, m.extender = nil, nil
	m.mu.Unlock()
	errs = append(errs, est.stop(), m.webhook.stop(), ext.stop())
	for _, n := range m.nodes {
		errs = append(errs, n.stop()...)
	}
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, fmt.Errorf("member %s: %w", m.name, err))
		}
	}
	return out
}

// startExtender runs the extender command in process, as its main would
// (leader election off: there is one), and waits until it is ready. It
// serves addr, held in ports, and a health port it holds there too; the
// ports it does not take are closed when it returns.
func (e *Env) startExtender(ctx context.Context, m *Member, ports *cluster.HeldPorts, addr string) (*component, error) {
	healthAddr, err := ports.Hold()
	if err != nil {
		return nil, errors.Join(err, ports.Close())
	}
	configFile, err := e.configFile()
	if err != nil {
		return nil, errors.Join(err, ports.Close())
	}
	opts := extenderoptions.New()
	opts.ConfigFile = configFile
	if opts.Kubeconfig, err = e.ids.kubeconfig(m.ids.extender, m.name+"-extender"); err != nil {
		return nil, errors.Join(err, ports.Close())
	}
	opts.WrapTransport = e.ids.refusals.wrap(m.name+"-extender", m.ids.extender.admin)
	opts.BindAddress = addr
	opts.HealthBindAddress = healthAddr
	opts.MetricsBindAddress = "0"
	opts.LeaderElection.Enabled = false
	opts.Listen = ports.Listen
	if err := opts.Validate(); err != nil {
		return nil, errors.Join(fmt.Errorf("extender options of %s: %w", m.name, err), ports.Close())
	}
	c, err := e.runComponent(ctx, m.name+"-extender", func(ctx context.Context) error {
		defer func() { _ = ports.Close() }() // Ports Run did not take.
		return extenderapp.Run(ctx, opts)
	})
	if err != nil {
		return nil, errors.Join(err, ports.Close())
	}
	url := "http://" + healthAddr + "/readyz"
	if err := waitHTTP(ctx, c, url, e.opts.StartTimeout); err != nil {
		_ = c.stop()
		return nil, fmt.Errorf("extender of %s (log %s): %w", m.name, e.logs.path(c.name), err)
	}
	return c, nil
}

// waitHTTP polls url until it answers 200, the component exits or timeout passes.
func waitHTTP(ctx context.Context, c *component, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	last := errors.New("not probed yet")
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if done, err := c.exited(); done {
			return false, fmt.Errorf("exited while starting: %v", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			return false, nil
		}
		_ = resp.Body.Close()
		last = fmt.Errorf("HTTP %d", resp.StatusCode)
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("not ready at %s: %w (last answer: %v)", url, err, last)
	}
	return nil
}

// configFile writes the Tessera configuration once, for the components
// that take it as a file (the extender).
func (e *Env) configFile() (string, error) {
	path := filepath.Join(e.dir, "tessera-config.yaml")
	data, err := yaml.Marshal(e.cfg)
	if err != nil {
		return "", fmt.Errorf("encode Tessera configuration: %w", err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("write Tessera configuration: %w", err)
	}
	return path, nil
}

// memberSchedulerConfig is the shipped scheduler configuration with the
// extender at extenderAddr, managing the resources pods may ask for (the shipped
// file lists Tessera's; compat: hami adds HAMi's, as the chart does).
func memberSchedulerConfig(extenderAddr string, managed []string) (string, error) {
	path, err := cluster.RepoFile(schedulerConfigFile)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read kube-scheduler configuration: %w", err)
	}
	config, err := withExtenderAddress(string(data), extenderAddr)
	if err != nil {
		return "", err
	}
	return withManagedResources(config, managed)
}

// shippedManaged is the managedResources block of schedulerConfigFile.
const shippedManaged = `    managedResources:
      - name: tessera.io/vgpu
        ignoredByScheduler: false
      - name: tessera.io/vgpu-memory
        ignoredByScheduler: false
      - name: tessera.io/vgpu-cores
        ignoredByScheduler: false
`

// withManagedResources makes the extender manage exactly names.
func withManagedResources(config string, names []string) (string, error) {
	if n := strings.Count(config, shippedManaged); n != 1 {
		return "", fmt.Errorf("%s contains its managedResources block %d times, want exactly once", schedulerConfigFile, n)
	}
	var b strings.Builder
	b.WriteString("    managedResources:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "      - name: %s\n        ignoredByScheduler: false\n", name)
	}
	return strings.Replace(config, shippedManaged, b.String(), 1), nil
}

// withExtenderAddress points the configuration's one extender at addr
// (host:port).
func withExtenderAddress(config, addr string) (string, error) {
	if n := strings.Count(config, shippedExtenderURL); n != 1 {
		return "", fmt.Errorf("%s contains %q %d times, want exactly once", schedulerConfigFile, shippedExtenderURL, n)
	}
	return strings.Replace(config, shippedExtenderURL, "urlPrefix: http://"+addr, 1), nil
}

// componentClient is an admin client of the member's API server of its
// own, with rate limits loose enough for a test and a user agent naming
// the component: for the roles the environment plays itself (the
// simulated kubelet). Tessera's components get their ServiceAccount's
// client instead (identity.go).
func componentClient(m *Member, userAgent string) (*rest.Config, kubernetes.Interface, error) {
	cfg := m.cluster.RESTConfig()
	cfg.QPS, cfg.Burst = 100, 200
	cfg.UserAgent = userAgent
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("client of %s for %s: %w", m.name, userAgent, err)
	}
	return cfg, client, nil
}
