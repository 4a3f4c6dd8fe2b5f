package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// Addresses every test cluster uses. The service range must be set for
// kube-apiserver to start, but nothing ever sends traffic to it: there is no
// kube-proxy, and aggregated APIs are reached through ExternalName services
// that name 127.0.0.1 (see RegisterLoopbackAPIService).
const (
	loopback             = "127.0.0.1"
	serviceClusterRange  = "10.96.0.0/24"
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	frontProxyClientName = "front-proxy-client"
	adminUser            = "tessera-admin"
	mastersGroup         = "system:masters" // bound to cluster-admin by RBAC's bootstrap policy
	portAttempts         = 3
	stopGrace            = 10 * time.Second
)

// clusterPKI holds every certificate and key file of one API server and the
// components that talk to it.
type clusterPKI struct {
	ca, frontProxyCA        *authority
	caFile                  string
	caKeyFile               string
	frontProxyCAFile        string
	servingCert, servingKey string // kube-apiserver's, for 127.0.0.1
	proxyClientCert         string // what kube-apiserver presents to aggregated API servers
	proxyClientKey          string
	componentCert           string // serving certificate of the other components' secure ports
	componentKey            string
	saPrivate, saPublic     string
	admin                   keyPair // client certificate in system:masters
}

func newClusterPKI(dir string) (*clusterPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create PKI directory: %w", err)
	}
	p := &clusterPKI{}
	var err error
	if p.ca, err = newAuthority("tessera-test-ca"); err != nil {
		return nil, err
	}
	if p.frontProxyCA, err = newAuthority("tessera-test-front-proxy-ca"); err != nil {
		return nil, err
	}
	if p.caFile, err = writeCA(dir, "ca", p.ca); err != nil {
		return nil, err
	}
	caKey, err := privateKeyPEM(p.ca.key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	p.caKeyFile = filepath.Join(dir, "ca.key")
	if err := os.WriteFile(p.caKeyFile, caKey, 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if p.frontProxyCAFile, err = writeCA(dir, "front-proxy-ca", p.frontProxyCA); err != nil {
		return nil, err
	}
	leaves := []struct {
		name       string
		authority  *authority
		req        certRequest
		cert, key  *string
		keepClient bool
	}{
		{"apiserver", p.ca, certRequest{commonName: "kube-apiserver", ips: loopbackIPs(), server: true,
			dnsNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
			&p.servingCert, &p.servingKey, false},
		{"front-proxy-client", p.frontProxyCA, certRequest{commonName: frontProxyClientName, client: true},
			&p.proxyClientCert, &p.proxyClientKey, false},
		{"component", p.ca, certRequest{commonName: "tessera-test-component", ips: loopbackIPs(), dnsNames: []string{"localhost"}, server: true},
			&p.componentCert, &p.componentKey, false},
		{"admin", p.ca, certRequest{commonName: adminUser, organizations: []string{mastersGroup}, client: true},
			nil, nil, true},
	}
	for _, leaf := range leaves {
		pair, err := leaf.authority.issue(leaf.req)
		if err != nil {
			return nil, err
		}
		certPath, keyPath, err := pair.write(dir, leaf.name)
		if err != nil {
			return nil, err
		}
		if leaf.keepClient {
			p.admin = pair
			continue
		}
		*leaf.cert, *leaf.key = certPath, keyPath
	}
	if p.saPrivate, p.saPublic, err = serviceAccountKeys(dir); err != nil {
		return nil, err
	}
	return p, nil
}

// controlPlane is etcd plus kube-apiserver, and whatever else was started
// against them; a member cluster and Karmada's control plane are both one.
type controlPlane struct {
	name         string
	dir          string
	pki          *clusterPKI
	mu           sync.Mutex // guards processes: a server may be restarted while others run
	processes    []*process // in start order; a restarted server keeps its place
	etcdURL      string     // etcd's client URL
	server       string     // kube-apiserver's URL
	kubeconfig   string     // admin kubeconfig file
	restConfig   *rest.Config
	startTimeout time.Duration
	logf         func(format string, args ...any)
}

// componentSpec says how to run one server and how to know it is ready.
type componentSpec struct {
	name   string
	bin    string
	ports  int                        // how many free loopback ports it needs
	args   func(ports []int) []string // its flags, given those ports
	probe  func(ports []int) string   // URL that answers 200 once it is ready
	client *http.Client
	before func() error // runs before each attempt (etcd wipes its data dir)
}

// run starts a component and waits until it is ready. When a port chosen as
// free was taken in the meantime, it tries again with other ports.
func (cp *controlPlane) run(ctx context.Context, spec componentSpec) ([]int, error) {
	if _, err := os.Stat(spec.bin); err != nil {
		return nil, fmt.Errorf("start %s: binary: %w", spec.name, err)
	}
	logPath := filepath.Join(cp.dir, spec.name+".log")
	for attempt := 1; ; attempt++ {
		if spec.before != nil {
			if err := spec.before(); err != nil {
				return nil, fmt.Errorf("prepare %s: %w", spec.name, err)
			}
		}
		ports, err := freePorts(spec.ports)
		if err != nil {
			return nil, fmt.Errorf("start %s: %w", spec.name, err)
		}
		start := time.Now()
		p, err := startProcess(spec.name, logPath, spec.bin, spec.args(ports))
		if err != nil {
			return nil, err
		}
		cp.mu.Lock()
		cp.processes = append(cp.processes, p)
		cp.mu.Unlock()
		url := spec.probe(ports)
		p.probeURL, p.probeClient = url, spec.client
		err = waitReady(ctx, p, spec.client, url, cp.startTimeout)
		if err == nil {
			cp.logf("%s: %s ready at %s after %s (log %s)", cp.name, spec.name, url, time.Since(start).Round(time.Millisecond), logPath)
			return ports, nil
		}
		p.stop(stopGrace)
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return nil, fmt.Errorf("start %s of %s: %w", spec.name, cp.name, err)
		}
		cp.logf("%s: %s lost a port race, retrying with other ports: %v", cp.name, spec.name, err)
	}
}

// startEtcd starts a single-member etcd with client and peer URLs on loopback.
func (cp *controlPlane) startEtcd(ctx context.Context, bin string) (clientURL string, err error) {
	dataDir := filepath.Join(cp.dir, "etcd-data")
	plain, err := probeClient(nil, nil)
	if err != nil {
		return "", err
	}
	ports, err := cp.run(ctx, componentSpec{
		name:  "etcd",
		bin:   bin,
		ports: 2,
		args: func(ports []int) []string {
			client, peer := loopbackURL("http", ports[0]), loopbackURL("http", ports[1])
			return []string{
				"--name=" + cp.name,
				"--data-dir=" + dataDir,
				"--listen-client-urls=" + client,
				"--advertise-client-urls=" + client,
				"--listen-peer-urls=" + peer,
				"--initial-advertise-peer-urls=" + peer,
				"--initial-cluster=" + cp.name + "=" + peer,
				// A test cluster is thrown away: durability only costs time on a shared disk.
				"--unsafe-no-fsync=true",
				"--log-level=warn",
			}
		},
		probe:  func(ports []int) string { return loopbackURL("http", ports[0]) + "/health" },
		client: plain,
		before: func() error { return os.RemoveAll(dataDir) },
	})
	if err != nil {
		return "", err
	}
	cp.etcdURL = loopbackURL("http", ports[0])
	return cp.etcdURL, nil
}

// startAPIServer starts kube-apiserver (called name in logs) on etcd, writes the admin kubeconfig
// and fills cp.server and cp.restConfig.
//
// Authorization is RBAC (not AlwaysAllow), so that tests can check the
// ClusterRoles Tessera ships; the admin, kube-controller-manager and
// kube-scheduler authenticate as system:masters, which RBAC's bootstrap
// policy makes cluster-admin. The ServiceAccount admission plugin is off, as
// in controller-runtime's envtest: without kube-controller-manager no
// "default" service account exists, and no kubelet would mount its token.
func (cp *controlPlane) startAPIServer(ctx context.Context, name, bin, etcdURL string, extra []string) error {
	adminProbe, err := probeClient(cp.pki.ca.certPEM, &cp.pki.admin)
	if err != nil {
		return err
	}
	pki := cp.pki
	ports, err := cp.run(ctx, componentSpec{
		name:  name,
		bin:   bin,
		ports: 1,
		args: func(ports []int) []string {
			return append([]string{
				"--etcd-servers=" + etcdURL,
				"--bind-address=" + loopback,
				"--advertise-address=" + loopback,
				"--secure-port=" + strconv.Itoa(ports[0]),
				"--tls-cert-file=" + pki.servingCert,
				"--tls-private-key-file=" + pki.servingKey,
				"--client-ca-file=" + pki.caFile,
				"--service-account-issuer=" + serviceAccountIssuer,
				"--service-account-key-file=" + pki.saPublic,
				"--service-account-signing-key-file=" + pki.saPrivate,
				"--service-cluster-ip-range=" + serviceClusterRange,
				"--authorization-mode=RBAC",
				"--disable-admission-plugins=ServiceAccount",
				// The "kubernetes" Service's endpoints would name 127.0.0.1,
				// which Endpoints may not hold; nothing here uses them.
				"--endpoint-reconciler-type=none",
				"--allow-privileged=true",
				"--profiling=false",
				// Front proxy: how kube-apiserver authenticates to aggregated
				// API servers, and how they trust the user it forwards.
				"--requestheader-client-ca-file=" + pki.frontProxyCAFile,
				"--requestheader-allowed-names=" + frontProxyClientName,
				"--requestheader-username-headers=X-Remote-User",
				"--requestheader-group-headers=X-Remote-Group",
				"--requestheader-extra-headers-prefix=X-Remote-Extra-",
				"--proxy-client-cert-file=" + pki.proxyClientCert,
				"--proxy-client-key-file=" + pki.proxyClientKey,
			}, extra...)
		},
		probe:  func(ports []int) string { return loopbackURL("https", ports[0]) + "/readyz" },
		client: adminProbe,
	})
	if err != nil {
		return err
	}
	cp.server = loopbackURL("https", ports[0])
	cp.kubeconfig = filepath.Join(cp.dir, "admin.kubeconfig")
	if err := writeKubeconfig(cp.kubeconfig, cp.name, cp.server, pki.ca.certPEM, pki.admin); err != nil {
		return err
	}
	cp.restConfig = &rest.Config{
		Host: cp.server,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   pki.ca.certPEM,
			CertData: pki.admin.certPEM,
			KeyData:  pki.admin.keyPEM,
		},
		// Tests create objects in bursts; client-go's default of 5 QPS
		// would make them wait on the client, not on the server.
		QPS:   200,
		Burst: 400,
	}
	return nil
}

// secureComponentArgs are the flags every component with a secure port
// (controller managers, schedulers) gets: loopback bind, a serving
// certificate from the cluster CA, and delegated authentication against
// the API server so the admin certificate can probe it. The caller adds
// --kubeconfig or a configuration file that names cp.kubeconfig.
func (cp *controlPlane) secureComponentArgs(port int) []string {
	return []string{
		"--authentication-kubeconfig=" + cp.kubeconfig,
		"--authorization-kubeconfig=" + cp.kubeconfig,
		"--bind-address=" + loopback,
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + cp.pki.componentCert,
		"--tls-private-key-file=" + cp.pki.componentKey,
	}
}

// stop ends every process, last started first, and waits for each.
func (cp *controlPlane) stop() {
	cp.mu.Lock()
	procs := slices.Clone(cp.processes)
	cp.mu.Unlock()
	for _, p := range slices.Backward(procs) {
		p.stop(stopGrace)
	}
}

// alive lists the processes of the control plane still running.
func (cp *controlPlane) alive() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var names []string
	for _, p := range cp.processes {
		if p.alive() {
			names = append(names, fmt.Sprintf("%s (pid %d)", p.name, p.pid))
		}
	}
	return names
}

func loopbackURL(scheme string, port int) string {
	return scheme + "://" + loopback + ":" + strconv.Itoa(port)
}
