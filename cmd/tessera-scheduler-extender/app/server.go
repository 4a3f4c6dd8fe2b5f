// Package app is the tessera-scheduler-extender command: it wires the
// extender (package scheduler-plugin/extender) to a client, informers, an
// HTTP server, metrics, health probes and leader election.
package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app/options"
	"github.com/tessera-gpu/tessera/pkg/command"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/extender"
)

// Component names the extender in events and the lease identity.
const Component = "tessera-scheduler-extender"

// shutdownTimeout bounds how long in-flight calls (binds) may finish.
const shutdownTimeout = 20 * time.Second

// eventFlushTimeout bounds how long a stopping extender waits for its last
// events to be written.
const eventFlushTimeout = 5 * time.Second

// NewCommand returns the root command.
func NewCommand() *cobra.Command {
	opts := options.New()
	return command.New(Component,
		"Tessera's kube-scheduler extender: per-GPU fit, GPU and slot choice at bind time",
		`tessera-scheduler-extender answers kube-scheduler's extender calls for pods
that request Tessera's vGPU resources: filter (per-GPU fit), prioritize
(binpack or spread) and bind (choose GPUs and slots, annotate, bind).`,
		opts, func(ctx context.Context) error { return Run(ctx, opts) })
}

// Run serves until ctx is cancelled, a server fails, or leadership is lost.
func Run(ctx context.Context, opts *options.Options) error {
	logger := klog.FromContext(ctx)
	cfg := config.Default()
	if opts.ConfigFile != "" {
		var err error
		if cfg, err = config.Load(opts.ConfigFile); err != nil {
			return err
		}
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %q: %w", opts.Kubeconfig, err)
	}
	restCfg.QPS, restCfg.Burst = opts.KubeAPIQPS, opts.KubeAPIBurst
	restCfg.UserAgent = Component
	restCfg.Wrap(opts.WrapTransport)
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create API client: %w", err)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := extender.NewMetrics(reg)
	if err != nil {
		return err
	}
	// The broadcaster outlives ctx: it is shut down last, once the calls
	// that record events have finished and their events are written.
	broadcaster := record.NewBroadcaster(record.WithContext(context.WithoutCancel(ctx)))
	sink := &trackingSink{sink: &typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")}}
	broadcaster.StartRecordingToSink(sink)
	defer func() {
		flushCtx, cancelFlush := context.WithTimeout(context.WithoutCancel(ctx), eventFlushTimeout)
		defer cancelFlush()
		sink.settle(flushCtx, 250*time.Millisecond)
		broadcaster.Shutdown()
	}()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})

	var leading atomic.Bool
	leading.Store(!opts.LeaderElection.Enabled)
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTransform(dropManagedFields))
	bindWait := opts.FilterBindWait
	if bindWait == 0 {
		bindWait = -1 // off; the library's 0 means its default
	}
	ext, err := extender.New(extender.Options{
		Client: client, Informers: factory, Config: cfg, Recorder: recorder, Metrics: metrics, IsLeader: leading.Load,
		BindWait: bindWait,
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer func() {
		cancel() // Shutdown waits for the informers, which stop on ctx.
		factory.Shutdown()
	}()
	logger.Info("Waiting for the node and pod caches")
	if !cache.WaitForCacheSync(ctx.Done(), ext.HasSynced) {
		return fmt.Errorf("wait for node and pod caches: %w", context.Cause(ctx))
	}

	errc := make(chan error, 4)
	servers := []*command.Server{{Name: "extender", Addr: opts.BindAddress, Handler: ext.Handler(), Listen: opts.Listen}}
	if opts.MetricsBindAddress != "0" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		servers = append(servers, &command.Server{Name: "metrics", Addr: opts.MetricsBindAddress, Handler: mux, Listen: opts.Listen})
	}
	if opts.HealthBindAddress != "0" {
		servers = append(servers, &command.Server{Name: "health", Addr: opts.HealthBindAddress, Handler: healthHandler(ext, &leading), Listen: opts.Listen})
	}
	for _, s := range servers {
		if err := s.Start(ctx, errc); err != nil {
			command.Shutdown(logger, shutdownTimeout, servers)
			return err
		}
	}
	stopElection := func() {}
	if opts.LeaderElection.Enabled {
		elector, err := newElector(client, recorder, opts.LeaderElection, &leading, errc)
		if err != nil {
			command.Shutdown(logger, shutdownTimeout, servers)
			return err
		}
		// The election has its own context: it must outlive the servers'
		// shutdown and then release the lease.
		electCtx, cancelElection := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); elector.Run(electCtx) }()
		stopElection = func() { cancelElection(); <-done }
	}
	// Servers stop before the lease is released, so that no bind of this
	// replica is still writing when another one takes over.
	defer func() {
		command.Shutdown(logger, shutdownTimeout, servers)
		stopElection()
	}()
	logger.Info("Scheduler extender is serving", "address", opts.BindAddress, "leaderElection", opts.LeaderElection.Enabled)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// newElector builds the Lease-based leader election. Losing the lease ends
// Run: the in-flight record of a replica that stopped leading may be stale.
func newElector(client kubernetes.Interface, recorder record.EventRecorder, le options.LeaderElection, leading *atomic.Bool, errc chan<- error) (*leaderelection.LeaderElector, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("leader election identity: %w", err)
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.ResourceNamespace, le.ResourceName,
		client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: host + "_" + uuid.NewString(), EventRecorder: recorder})
	if err != nil {
		return nil, fmt.Errorf("create leader election lock %s/%s: %w", le.ResourceNamespace, le.ResourceName, err)
	}
	return leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            Component,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				klog.FromContext(ctx).Info("Started leading: binding pods")
				leading.Store(true)
			},
			OnStoppedLeading: func() {
				if leading.Swap(false) {
					select { // non-blocking: after a clean stop nobody reads errc
					case errc <- errors.New("lost the scheduler extender lease"):
					default:
					}
				}
			},
		},
	})
}

// healthHandler serves /healthz (the process is up) and /readyz (caches
// synced and this replica leads), so a Service routes calls to the leader.
func healthHandler(ext *extender.Extender, leading *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case !ext.HasSynced():
			http.Error(w, "caches are not synced", http.StatusServiceUnavailable)
		case !leading.Load():
			http.Error(w, "not the leader", http.StatusServiceUnavailable)
		default:
			fmt.Fprintln(w, "ok")
		}
	})
	return mux
}

// dropManagedFields trims objects before they enter the informer caches:
// the extender never reads managed fields, and on large clusters they are
// a large share of every cached pod.
func dropManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}
