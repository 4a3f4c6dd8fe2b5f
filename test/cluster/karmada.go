package cluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	karmadaclientset "github.com/karmada-io/karmada/pkg/generated/clientset/versioned"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Names Karmada's components look for.
const (
	karmadaSystemNamespace  = "karmada-system"
	karmadaClusterNamespace = "karmada-cluster" // cluster credentials, as karmadactl join keeps them
	aggregatedAPIServerName = "karmada-aggregated-apiserver"
	estimatorServicePrefix  = "karmada-scheduler-estimator-"
)

// DefaultEstimatorPort is karmada-scheduler's --scheduler-estimator-port
// default, the port of every karmada-scheduler-estimator-CLUSTER Service.
const DefaultEstimatorPort = 10352

// KarmadaOptions says what StartKarmada starts.
type KarmadaOptions struct {
	// Name names the control plane in logs and its directory; "karmada" if empty.
	Name string
	// Paths are the server binaries and Karmada's CRDs; when Etcd,
	// Kubernetes, Karmada or KarmadaCRDs is empty, StartKarmada calls Binaries.
	Paths Paths
	// EstimatorPort is karmada-scheduler's --scheduler-estimator-port: the
	// Service port of every estimator (SetEstimator maps it to the real
	// loopback port). DefaultEstimatorPort if zero.
	EstimatorPort int
	// Extra flags, appended after the ones StartKarmada sets.
	APIServerArgs, AggregatedAPIServerArgs, ControllerManagerArgs, SchedulerArgs []string
	// Dir, KeepDir, StartTimeout and T are as in Options.
	Dir          string
	KeepDir      bool
	StartTimeout time.Duration
	T            TB
}

// Karmada is a running Karmada control plane: etcd, kube-apiserver as
// karmada-apiserver with Karmada's CRDs, karmada-aggregated-apiserver
// (serving cluster.karmada.io through an APIService), karmada-controller-manager
// and karmada-scheduler with the scheduler estimator enabled, all on 127.0.0.1.
// There is no karmada-webhook process: Karmada's own binding handlers run
// in this process (webhook.go), since the controllers cannot do without the
// permanent-id labels they add; PropagationPolicies get none, so tests set
// that label themselves.
type Karmada struct {
	cp            *controlPlane
	webhook       *bindingWebhook
	opts          KarmadaOptions
	client        kubernetes.Interface
	karmadaClient karmadaclientset.Interface
	stopOnce      sync.Once
	failed        bool
}

// StartKarmada starts a Karmada control plane and returns once every
// component is ready and cluster.karmada.io is served. On error nothing is
// left running and the error names the component and quotes its log.
func StartKarmada(ctx context.Context, opts KarmadaOptions) (*Karmada, error) {
	if opts.Name == "" {
		opts.Name = "karmada"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if opts.EstimatorPort == 0 {
		opts.EstimatorPort = DefaultEstimatorPort
	}
	if p := opts.Paths; p.Etcd == "" || p.Kubernetes == "" || p.Karmada == "" || p.KarmadaCRDs == "" {
		paths, err := Binaries(ctx, ComponentEtcd, ComponentKubernetes, ComponentKarmada)
		if err != nil {
			return nil, fmt.Errorf("start Karmada %s: %w", opts.Name, err)
		}
		opts.Paths = paths
	}
	cp, err := newControlPlane(opts.Name, opts.Dir, opts.StartTimeout, opts.T)
	if err != nil {
		return nil, fmt.Errorf("start Karmada %s: %w", opts.Name, err)
	}
	k := &Karmada{cp: cp, opts: opts}
	if err := k.start(ctx); err != nil {
		k.failed = true
		k.Stop()
		return nil, fmt.Errorf("start Karmada %s: %w", opts.Name, err)
	}
	return k, nil
}

func (k *Karmada) start(ctx context.Context) error {
	karmadaBin := func(name string) string { return filepath.Join(k.opts.Paths.Karmada, name) }
	etcdURL, err := k.cp.startEtcd(ctx, filepath.Join(k.opts.Paths.Etcd, "etcd"))
	if err != nil {
		return err
	}
	if err := k.cp.startAPIServer(ctx, "karmada-apiserver", filepath.Join(k.opts.Paths.Kubernetes, "kube-apiserver"), etcdURL, k.opts.APIServerArgs); err != nil {
		return err
	}
	if k.client, err = kubernetes.NewForConfig(k.cp.restConfig); err != nil {
		return fmt.Errorf("client for %s: %w", k.cp.server, err)
	}
	if k.karmadaClient, err = karmadaclientset.NewForConfig(k.cp.restConfig); err != nil {
		return fmt.Errorf("Karmada client for %s: %w", k.cp.server, err)
	}
	for _, ns := range []string{karmadaSystemNamespace, karmadaClusterNamespace} {
		if err := ensureNamespace(ctx, k.client, ns); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := installCRDs(ctx, k.cp.restConfig, k.opts.Paths.KarmadaCRDs, k.opts.StartTimeout); err != nil {
		return err
	}
	k.cp.logf("%s: Karmada CRDs from %s established after %s", k.cp.name, k.opts.Paths.KarmadaCRDs, time.Since(start).Round(time.Millisecond))

	if err := k.startBindingWebhook(ctx); err != nil {
		return err
	}
	if err := k.startAggregatedAPIServer(ctx, karmadaBin("karmada-aggregated-apiserver")); err != nil {
		return err
	}
	healthClient, err := probeClient(nil, nil)
	if err != nil {
		return err
	}
	// Both controllers serve health probes over plain HTTP; their metrics
	// endpoints are off ("0") so that they listen on nothing else.
	controllerArgs := func(port int, extra ...string) []string {
		return append([]string{
			"--kubeconfig=" + k.cp.kubeconfig,
			"--leader-elect=false",
			"--metrics-bind-address=0",
			"--health-probe-bind-address=" + loopback + ":" + strconv.Itoa(port),
		}, extra...)
	}
	if _, err := k.cp.run(ctx, componentSpec{
		name:  "karmada-controller-manager",
		bin:   karmadaBin("karmada-controller-manager"),
		ports: 1,
		args: func(ports []int) []string {
			return append(controllerArgs(ports[0]), k.opts.ControllerManagerArgs...)
		},
		probe:  func(ports []int) string { return loopbackURL("http", ports[0]) + "/healthz" },
		client: healthClient,
	}); err != nil {
		return err
	}
	_, err = k.cp.run(ctx, componentSpec{
		name:  "karmada-scheduler",
		bin:   karmadaBin("karmada-scheduler"),
		ports: 1,
		args: func(ports []int) []string {
			return append(controllerArgs(ports[0],
				"--enable-scheduler-estimator=true",
				"--scheduler-estimator-port="+strconv.Itoa(k.opts.EstimatorPort),
				"--scheduler-estimator-service-namespace="+karmadaSystemNamespace,
			), k.opts.SchedulerArgs...)
		},
		probe:  func(ports []int) string { return loopbackURL("http", ports[0]) + "/healthz" },
		client: healthClient,
	})
	return err
}

// startAggregatedAPIServer runs karmada-aggregated-apiserver on the same
// etcd and registers it for cluster.karmada.io/v1alpha1. Its serving
// certificate names the Service kube-apiserver verifies it as; the front
// proxy's CA reaches it through kube-system/extension-apiserver-authentication,
// which it reads with --authentication-kubeconfig.
func (k *Karmada) startAggregatedAPIServer(ctx context.Context, bin string) error {
	serviceHost := aggregatedAPIServerName + "." + karmadaSystemNamespace + ".svc"
	pair, err := k.cp.pki.ca.issue(certRequest{
		commonName: aggregatedAPIServerName, ips: loopbackIPs(), server: true,
		dnsNames: []string{serviceHost, "localhost"},
	})
	if err != nil {
		return err
	}
	certFile, keyFile, err := pair.write(filepath.Join(k.cp.dir, "pki"), aggregatedAPIServerName)
	if err != nil {
		return err
	}
	adminProbe, err := probeClient(k.cp.pki.ca.certPEM, &k.cp.pki.admin)
	if err != nil {
		return err
	}
	ports, err := k.cp.run(ctx, componentSpec{
		name:  aggregatedAPIServerName,
		bin:   bin,
		ports: 1,
		args: func(ports []int) []string {
			return append([]string{
				"--kubeconfig=" + k.cp.kubeconfig,
				"--authentication-kubeconfig=" + k.cp.kubeconfig,
				"--authorization-kubeconfig=" + k.cp.kubeconfig,
				"--etcd-servers=" + k.cp.etcdURL,
				"--bind-address=" + loopback,
				"--secure-port=" + strconv.Itoa(ports[0]),
				"--tls-cert-file=" + certFile,
				"--tls-private-key-file=" + keyFile,
			}, k.opts.AggregatedAPIServerArgs...)
		},
		probe:  func(ports []int) string { return loopbackURL("https", ports[0]) + "/readyz" },
		client: adminProbe,
	})
	if err != nil {
		return err
	}
	start := time.Now()
	err = RegisterLoopbackAPIService(ctx, k.cp.restConfig, LoopbackAPIService{
		Group: "cluster.karmada.io", Version: "v1alpha1", Port: ports[0],
		ServiceNamespace: karmadaSystemNamespace, ServiceName: aggregatedAPIServerName,
		CABundle: k.cp.pki.ca.certPEM,
	}, k.opts.StartTimeout)
	if err != nil {
		return fmt.Errorf("%w; last lines of %s:\n%s", err, filepath.Join(k.cp.dir, aggregatedAPIServerName+".log"),
			fileTail(filepath.Join(k.cp.dir, aggregatedAPIServerName+".log"), tailLines))
	}
	k.cp.logf("%s: APIService v1alpha1.cluster.karmada.io available after %s", k.cp.name, time.Since(start).Round(time.Millisecond))
	return nil
}

// Stop ends every process and removes the directory, as Member.Stop does.
func (k *Karmada) Stop() {
	k.stopOnce.Do(func() {
		stopAndClean(k.cp, k.failed, k.opts.KeepDir, k.opts.T)
		if err := k.webhook.stop(); err != nil {
			k.cp.logf("%s: %v", k.cp.name, err)
		}
	})
}

// RESTConfig returns a new copy of the karmada-apiserver admin client configuration.
func (k *Karmada) RESTConfig() *rest.Config { return rest.CopyConfig(k.cp.restConfig) }

// Kubeconfig returns the path of a kubeconfig file for karmada-apiserver with admin credentials.
func (k *Karmada) Kubeconfig() string { return k.cp.kubeconfig }

// Client returns an admin clientset for karmada-apiserver.
func (k *Karmada) Client() kubernetes.Interface { return k.client }

// KarmadaClient returns an admin clientset for Karmada's own APIs.
func (k *Karmada) KarmadaClient() karmadaclientset.Interface { return k.karmadaClient }

// Server returns karmada-apiserver's URL, https://127.0.0.1:PORT.
func (k *Karmada) Server() string { return k.cp.server }

// Dir returns the control plane's directory.
func (k *Karmada) Dir() string { return k.cp.dir }

// EstimatorPort returns karmada-scheduler's --scheduler-estimator-port.
func (k *Karmada) EstimatorPort() int { return k.opts.EstimatorPort }
