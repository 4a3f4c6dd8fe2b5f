package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// TB is the part of testing.TB a cluster uses: where to log, and whether the
// test failed (then Stop keeps the cluster's directory and logs).
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Failed() bool
}

// DefaultControllers is kube-controller-manager's --controllers unless
// Options.Controllers says otherwise: every default controller except the
// node lifecycle controller. With no kubelet to renew node leases, that
// controller would mark every node from AddNode NotReady after its grace
// period (50s) and taint it unreachable, which the scheduler then avoids.
const DefaultControllers = "*,-node-lifecycle-controller"

// DefaultStartTimeout bounds how long one component may take to become
// ready. It is generous because the test machines are small and shared.
const DefaultStartTimeout = 3 * time.Minute

// Options says what StartMember starts.
type Options struct {
	// Name names the cluster in logs, its directory and etcd; "member" if empty.
	Name string
	// Paths are the server binaries; when Paths.Etcd or Paths.Kubernetes is
	// empty, StartMember calls Binaries for them.
	Paths Paths
	// ControllerManager starts kube-controller-manager.
	ControllerManager bool
	// Controllers is kube-controller-manager's --controllers; DefaultControllers if empty.
	Controllers string
	// Scheduler starts kube-scheduler.
	Scheduler bool
	// SchedulerConfig is a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1)
	// in YAML, for example with an extender whose urlPrefix is on 127.0.0.1.
	// Its clientConnection.kubeconfig and leaderElection are overwritten.
	SchedulerConfig string
	// Extra flags, appended after the ones StartMember sets (a later flag wins).
	APIServerArgs, ControllerManagerArgs, SchedulerArgs []string
	// Dir is where the cluster's directory is created; os.TempDir() if empty.
	Dir string
	// KeepDir keeps the directory (data, certificates, logs) after Stop even
	// when everything passed. It is always kept when starting failed or T failed.
	KeepDir bool
	// StartTimeout bounds each component's start; DefaultStartTimeout if zero.
	StartTimeout time.Duration
	// T receives progress lines and tells Stop whether the test failed; may be nil.
	T TB
}

// Member is a running member cluster: etcd, kube-apiserver and optionally
// kube-controller-manager and kube-scheduler, all on 127.0.0.1.
type Member struct {
	cp       *controlPlane
	opts     Options
	client   kubernetes.Interface
	stopOnce sync.Once
	failed   bool // starting failed: keep the logs
}

// StartMember starts a member cluster and returns once every component
// answers its readiness probe. On error nothing is left running, and the
// error names the component and quotes the end of its log.
func StartMember(ctx context.Context, opts Options) (*Member, error) {
	if opts.Name == "" {
		opts.Name = "member"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.Controllers == "" {
		opts.Controllers = DefaultControllers
	}
	if opts.Paths.Etcd == "" || opts.Paths.Kubernetes == "" {
		paths, err := Binaries(ctx, ComponentEtcd, ComponentKubernetes)
		if err != nil {
			return nil, fmt.Errorf("start member %s: %w", opts.Name, err)
		}
		opts.Paths.Etcd, opts.Paths.Kubernetes = paths.Etcd, paths.Kubernetes
	}
	cp, err := newControlPlane(opts.Name, opts.Dir, opts.StartTimeout, opts.T)
	if err != nil {
		return nil, fmt.Errorf("start member %s: %w", opts.Name, err)
	}
	m := &Member{cp: cp, opts: opts}
	if err := m.start(ctx); err != nil {
		m.failed = true
		m.Stop()
		return nil, fmt.Errorf("start member %s: %w", opts.Name, err)
	}
	return m, nil
}

func (m *Member) start(ctx context.Context) error {
	k8sBin := func(name string) string { return filepath.Join(m.opts.Paths.Kubernetes, name) }
	etcdURL, err := m.cp.startEtcd(ctx, filepath.Join(m.opts.Paths.Etcd, "etcd"))
	if err != nil {
		return err
	}
	if err := m.cp.startAPIServer(ctx, "kube-apiserver", k8sBin("kube-apiserver"), etcdURL, m.opts.APIServerArgs); err != nil {
		return err
	}
	if m.client, err = kubernetes.NewForConfig(m.cp.restConfig); err != nil {
		return fmt.Errorf("client for %s: %w", m.cp.server, err)
	}
	probe, err := probeClient(m.cp.pki.ca.certPEM, &m.cp.pki.admin)
	if err != nil {
		return err
	}
	if m.opts.ControllerManager {
		_, err := m.cp.run(ctx, componentSpec{
			name:  "kube-controller-manager",
			bin:   k8sBin("kube-controller-manager"),
			ports: 1,
			args: func(ports []int) []string {
				return append(append(m.cp.secureComponentArgs(ports[0]),
					"--kubeconfig="+m.cp.kubeconfig,
					"--leader-elect=false",
					"--controllers="+m.opts.Controllers,
					"--root-ca-file="+m.cp.pki.caFile,
					"--service-account-private-key-file="+m.cp.pki.saPrivate,
					"--cluster-signing-cert-file="+m.cp.pki.caFile,
					"--cluster-signing-key-file="+m.cp.pki.caKeyFile,
					"--profiling=false",
				), m.opts.ControllerManagerArgs...)
			},
			probe:  func(ports []int) string { return loopbackURL("https", ports[0]) + "/healthz" },
			client: probe,
		})
		if err != nil {
			return err
		}
	}
	if m.opts.Scheduler {
		configPath := filepath.Join(m.cp.dir, "scheduler-config.yaml")
		config, err := schedulerConfig(m.opts.SchedulerConfig, m.cp.kubeconfig)
		if err != nil {
			return fmt.Errorf("kube-scheduler configuration: %w", err)
		}
		if err := os.WriteFile(configPath, config, 0o600); err != nil {
			return fmt.Errorf("write kube-scheduler configuration: %w", err)
		}
		_, err = m.cp.run(ctx, componentSpec{
			name:  "kube-scheduler",
			bin:   k8sBin("kube-scheduler"),
			ports: 1,
			args: func(ports []int) []string {
				// No --kubeconfig: kube-scheduler ignores it next to --config, which names it.
				args := m.cp.secureComponentArgs(ports[0])
				return append(append(args, "--config="+configPath, "--profiling=false"), m.opts.SchedulerArgs...)
			},
			// /readyz, unlike /healthz, waits for the informers to sync.
			probe:  func(ports []int) string { return loopbackURL("https", ports[0]) + "/readyz" },
			client: probe,
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// newControlPlane creates the cluster's directory and certificates.
func newControlPlane(name, parent string, startTimeout time.Duration, t TB) (*controlPlane, error) {
	dir, err := os.MkdirTemp(parent, "tessera-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	pki, err := newClusterPKI(filepath.Join(dir, "pki"))
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &controlPlane{name: name, dir: dir, pki: pki, startTimeout: startTimeout, logf: logfFor(t)}, nil
}

// logfFor logs to the test when there is one, else to klog.
func logfFor(t TB) func(format string, args ...any) {
	if t != nil {
		return func(format string, args ...any) { t.Helper(); t.Logf(format, args...) }
	}
	return func(format string, args ...any) { klog.InfoS(fmt.Sprintf(format, args...)) }
}

// Stop ends every process of the cluster (SIGTERM to its process group,
// SIGKILL after 10s) and waits for them. It removes the cluster's directory
// unless Options.KeepDir is set, starting failed, or Options.T failed; then
// it logs where the directory and the components' logs are. Stop may be
// called more than once.
func (m *Member) Stop() {
	m.stopOnce.Do(func() { stopAndClean(m.cp, m.failed, m.opts.KeepDir, m.opts.T) })
}

// stopAndClean stops a control plane and removes or keeps its directory.
func stopAndClean(cp *controlPlane, failed, keep bool, t TB) {
	cp.stop()
	if left := cp.alive(); len(left) > 0 {
		cp.logf("%s: still running after stop: %s", cp.name, strings.Join(left, ", "))
	}
	if failed || keep || (t != nil && t.Failed()) {
		cp.logf("%s: kept %s (component logs: %s)", cp.name, cp.dir, filepath.Join(cp.dir, "*.log"))
		return
	}
	if err := os.RemoveAll(cp.dir); err != nil {
		cp.logf("%s: remove %s: %v", cp.name, cp.dir, err)
	}
}

// RESTConfig returns a new copy of the admin client configuration
// (system:masters, by client certificate), safe for the caller to change.
func (m *Member) RESTConfig() *rest.Config { return rest.CopyConfig(m.cp.restConfig) }

// Kubeconfig returns the path of a kubeconfig file with the admin credentials embedded.
func (m *Member) Kubeconfig() string { return m.cp.kubeconfig }

// Client returns an admin clientset.
func (m *Member) Client() kubernetes.Interface { return m.client }

// Server returns kube-apiserver's URL, https://127.0.0.1:PORT.
func (m *Member) Server() string { return m.cp.server }

// Dir returns the cluster's directory: pki/, etcd-data/, admin.kubeconfig and COMPONENT.log.
func (m *Member) Dir() string { return m.cp.dir }

// Name returns the cluster's name.
func (m *Member) Name() string { return m.cp.name }
