package env

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/server"
)

// Estimator probe settings: the estimator checks the member's API server
// this often for its state-age metric (the command's defaults).
const (
	estimatorProbeInterval = 10 * time.Second
	estimatorProbeTimeout  = 5 * time.Second
	// estimateTimeout bounds one estimate asked for a report or a test.
	estimateTimeout = 10 * time.Second
)

// startEstimator runs Tessera's estimator server for the member in process,
// on 127.0.0.1 and a port of its own, and returns once it is serving.
func (e *Env) startEstimator(ctx context.Context, m *Member) error {
	cfg := e.ids.config(m.ids.estimator, m.name+"-estimator")
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("estimator of %s: client: %w", m.name, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("estimator of %s: dynamic client: %w", m.name, err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("estimator of %s: discovery client: %w", m.name, err)
	}
	m.mu.Lock()
	// 0 the first time; the same ports on a restart, so that Karmada's
	// Service and a Prometheus scrape config stay valid.
	port, metricsPort := m.estimatorPort, m.metricsPort
	m.mu.Unlock()
	raw, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("estimator of %s: listen on 127.0.0.1:%d: %w", m.name, port, err)
	}
	metricsLis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	if err != nil {
		_ = raw.Close()
		return fmt.Errorf("estimator of %s: listen for metrics on 127.0.0.1:%d: %w", m.name, metricsPort, err)
	}
	lis := &countingListener{Listener: raw}
	port, metricsPort = raw.Addr().(*net.TCPAddr).Port, metricsLis.Addr().(*net.TCPAddr).Port
	ready := make(chan error, 1)
	c, err := e.runComponent(ctx, m.name+"-estimator", func(ctx context.Context) error {
		defer lis.Close()
		defer metricsLis.Close()
		srv, err := server.New(ctx, server.Clients{Kube: kube, Dynamic: dyn, Discovery: disc}, server.Config{
			ClusterName: m.name, Tessera: e.cfg,
			ProbeInterval: estimatorProbeInterval, ProbeTimeout: estimatorProbeTimeout,
		})
		if err == nil {
			err = srv.Start(ctx)
		}
		ready <- err
		if err != nil {
			return err
		}
		group, ctx := errgroup.WithContext(ctx)
		// Mutual TLS when Options.EstimatorTLS gave karmada-scheduler certificates, else plain gRPC.
		group.Go(func() error { return srv.Serve(ctx, lis, e.estimatorServerConfig(port)) })
		group.Go(func() error { return serveMetrics(ctx, metricsLis, srv.Metrics().Registry()) })
		return group.Wait()
	})
	if err != nil {
		_ = lis.Close()
		_ = metricsLis.Close()
		return err
	}
	select {
	case err = <-ready:
	case <-time.After(e.opts.StartTimeout):
		err = fmt.Errorf("caches not synced after %s", e.opts.StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = c.stop()
		return fmt.Errorf("estimator of %s (log %s): %w", m.name, e.logs.path(c.name), err)
	}
	m.mu.Lock()
	m.estimator, m.estimatorPort, m.estimatorConns, m.metricsPort = c, port, lis, metricsPort
	m.mu.Unlock()
	return nil
}

// serveMetrics serves the estimator's registry at /metrics on lis, as the
// tessera-estimator command does on --metrics-bind-address, until ctx ends.
func serveMetrics(ctx context.Context, lis net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		_ = srv.Close()
	}()
	err := srv.Serve(lis)
	<-stopped
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serve estimator metrics on %s: %w", lis.Addr(), err)
}

// countingListener counts the connections it accepts: a new connection from
// karmada-scheduler is how a restarted estimator learns it is used again.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// join points Karmada at the member's estimator (Tessera mode), joins the
// member, and waits until Karmada's Cluster shows all of its vGPU slots.
func (e *Env) join(ctx context.Context, m *Member) error {
	start := time.Now()
	if e.opts.Estimator == EstimatorTessera {
		// Before the join: karmada-scheduler dials a member's estimator when
		// it first sees the Cluster.
		if err := e.karmada.SetEstimator(ctx, m.name, m.estimatorPort); err != nil {
			return err
		}
	}
	if err := e.karmada.JoinMember(ctx, m.name, m.cluster); err != nil {
		return err
	}
	vgpu := corev1.ResourceName(e.cfg.Resources.VGPU)
	want := int64(0)
	for _, n := range m.nodes {
		want += int64(len(n.gpus) * e.cfg.Node.SplitCount)
	}
	err := Eventually(ctx, e.opts.StartTimeout, fmt.Sprintf("Karmada's Cluster %s to show %d %s in its resource summary", m.name, want, vgpu),
		func(ctx context.Context) (bool, string, error) {
			c, err := e.karmada.KarmadaClient().ClusterV1alpha1().Clusters().Get(ctx, m.name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			if c.Status.ResourceSummary == nil {
				return false, "no resource summary yet", nil
			}
			got := c.Status.ResourceSummary.Allocatable[vgpu]
			return got.Value() == want, fmt.Sprintf("allocatable %s=%s", vgpu, got.String()), nil
		})
	if err != nil {
		return err
	}
	e.logf("%s: joined Karmada after %s", m.name, time.Since(start).Round(time.Millisecond))
	return nil
}

// Estimate is what each estimator answers for one replica in one member.
type Estimate struct {
	// Used is what karmada-scheduler goes by: the smaller of Stock and
	// Tessera in Tessera mode (Stock alone when Tessera's estimator does
	// not answer), Stock in stock mode.
	Used int32
	// Stock is Karmada's general estimate: the member's free resource
	// totals from its Cluster resource summary divided by the request.
	Stock int32
	// Tessera is Tessera's estimator's answer; valid when TesseraErr is nil.
	Tessera    int32
	TesseraErr error
}

// Estimates asks both estimators how many replicas asking for request fit
// in the member now: Karmada's general estimator (computed here on the
// Cluster object, exactly as karmada-scheduler does) and Tessera's
// estimator (over gRPC, as karmada-scheduler asks it). Karmada schedules by
// the smaller of the two in Tessera mode, by Stock alone in stock mode
// (Tessera's estimator still answers here, for comparison).
func (e *Env) Estimates(ctx context.Context, member string, request corev1.ResourceList) (Estimate, error) {
	m := e.Member(member)
	if m == nil {
		return Estimate{}, fmt.Errorf("estimate: no member %q", member)
	}
	c, err := e.karmada.KarmadaClient().ClusterV1alpha1().Clusters().Get(ctx, member, metav1.GetOptions{})
	if err != nil {
		return Estimate{}, fmt.Errorf("estimate for %s: get Cluster: %w", member, err)
	}
	est := Estimate{Stock: StockEstimate(ctx, c, request)}
	if addr := m.EstimatorAddress(); addr == "" {
		est.TesseraErr = fmt.Errorf("no Tessera estimator is serving for %s", member)
	} else if creds, err := e.estimatorCredentials(); err != nil {
		est.TesseraErr = err
	} else {
		est.Tessera, est.TesseraErr = TesseraEstimateWith(ctx, addr, member, request, creds)
	}
	est.Used = est.Stock
	if e.opts.Estimator == EstimatorTessera && est.TesseraErr == nil {
		est.Used = min(est.Stock, est.Tessera)
	}
	return est, nil
}

// StockEstimate is Karmada's general estimate for one cluster.
func StockEstimate(ctx context.Context, c *clusterv1alpha1.Cluster, request corev1.ResourceList) int32 {
	return fleet.KarmadaGeneralEstimate(ctx, c, &workv1alpha2.ReplicaRequirements{ResourceRequest: request})
}

// TesseraEstimate asks the estimator at addr, over Karmada's Estimator gRPC
// service and plain gRPC, how many replicas asking for request fit in
// cluster.
func TesseraEstimate(ctx context.Context, addr, cluster string, request corev1.ResourceList) (int32, error) {
	return TesseraEstimateWith(ctx, addr, cluster, request, insecure.NewCredentials())
}
