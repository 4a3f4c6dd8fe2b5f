// Package server is Tessera's implementation of Karmada's Estimator gRPC
// service. Karmada v1.18.0's AccurateSchedulerEstimatorServer builds its
// plugin registry internally and takes no extra plugins, so this server
// mirrors its request handling (same snapshot, same framework runtime, same
// in-tree plugins) and adds Tessera's plugin to the registry. It is a
// drop-in replacement for karmada-scheduler-estimator.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	cacheddiscovery "k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	frameworkruntime "github.com/karmada-io/karmada/pkg/estimator/server/framework/runtime"
	"github.com/karmada-io/karmada/pkg/estimator/server/replica"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"github.com/karmada-io/karmada/pkg/util/fedinformer"
	"github.com/karmada-io/karmada/pkg/util/fedinformer/genericmanager"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/metrics"
)

// Config is what the server needs besides its clients.
type Config struct {
	// ClusterName is the member cluster this estimator answers for; requests
	// for another cluster are refused.
	ClusterName string
	Tessera     config.Config
	// Parallelism bounds the goroutines of one estimate (0: Karmada's default).
	Parallelism int
	// ProbeInterval is how often the API server's reachability is checked
	// (for the state-age metric and log); ProbeTimeout bounds one check.
	ProbeInterval, ProbeTimeout time.Duration
}

// Clients are the member cluster's API clients.
type Clients struct {
	Kube      kubernetes.Interface
	Dynamic   dynamic.Interface
	Discovery discovery.DiscoveryInterface
}

// Server answers Karmada's Estimator RPCs for one member cluster.
type Server struct {
	estimatorservice.UnimplementedEstimatorServer

	cfg             Config
	informerFactory informers.SharedInformerFactory
	informerManager genericmanager.SingleClusterInformerManager
	schedCache      *versionedCache
	snapshots       *snapshots
	gpuCache        *gpucache.Cache
	waitingPods     *gpucache.WaitingPods
	framework       framework.Framework
	metrics         *metrics.Metrics
	freshness       *freshness
	workloads       *workloadLookup
	// handlersSynced report when both caches have seen the initial lists.
	handlersSynced []toolscache.InformerSynced
}

// New wires the informers, both caches and the estimation framework. The
// caches stop when ctx ends. Call Start before serving.
func New(ctx context.Context, clients Clients, cfg Config) (*Server, error) {
	if cfg.ClusterName == "" {
		return nil, errors.New("create estimator server: no cluster name")
	}
	if err := cfg.Tessera.Validate(); err != nil {
		return nil, fmt.Errorf("create estimator server: %w", err)
	}
	if cfg.ProbeInterval <= 0 || cfg.ProbeTimeout <= 0 {
		return nil, fmt.Errorf("create estimator server: probe interval %v and timeout %v must be positive", cfg.ProbeInterval, cfg.ProbeTimeout)
	}
	factory := informers.NewSharedInformerFactory(clients.Kube, 0)
	factory.InformerFor(&corev1.Pod{}, newPodInformer)
	s := &Server{
		cfg:             cfg,
		informerFactory: factory,
		schedCache:      newVersionedCache(schedcache.New(0, ctx.Done())),
		gpuCache:        gpucache.New(cfg.Tessera.Keys()),
		waitingPods:     gpucache.NewWaitingPods(cfg.Tessera),
		freshness: newFreshness(time.Now, func(ctx context.Context) error {
			// A one-item list served from the API server's watch cache:
			// cheap, and needs no permission the estimator lacks.
			_, err := clients.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1, ResourceVersion: "0"})
			return err
		}),
		workloads: &workloadLookup{
			restMapper: restmapper.NewDeferredDiscoveryRESTMapper(cacheddiscovery.NewMemCacheClient(clients.Discovery)),
			replicaLister: &replica.ListerWrapper{
				PodLister:        factory.Core().V1().Pods().Lister(),
				ReplicaSetLister: factory.Apps().V1().ReplicaSets().Lister(),
			},
		},
	}
	// Errors are ignored as in Karmada: SetTransform fails only on started informers.
	_ = factory.Core().V1().Nodes().Informer().SetTransform(fedinformer.StripUnusedFields)
	_ = factory.Core().V1().Pods().Informer().SetTransform(fedinformer.StripUnusedFields)
	_ = factory.Apps().V1().ReplicaSets().Informer().SetTransform(fedinformer.StripUnusedFields)

	s.snapshots = newSnapshots(s.schedCache)
	s.informerManager = genericmanager.NewSingleClusterInformerManager(ctx, clients.Dynamic, 0)
	for _, gvr := range supportedGVRs {
		s.informerManager.Lister(gvr)
	}
	s.workloads.informerManager = s.informerManager

	var err error
	if s.metrics, err = metrics.New(cfg.ClusterName, s.gpuCache, s.freshness, s.waitingPods); err != nil {
		return nil, fmt.Errorf("create estimator server: %w", err)
	}
	s.framework, err = newFramework(cfg.Tessera, s.gpuCache, cfg.Parallelism,
		[]estimator.Option{estimator.WithSetSearchBudgetCounter(s.metrics.SetSearchBudgetExhausted())},
		frameworkruntime.WithClientSet(clients.Kube),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithParallelism(cfg.Parallelism),
	)
	if err != nil {
		return nil, fmt.Errorf("create estimator server: %w", err)
	}
	schedSynced, err := (&schedCacheFeeder{cache: s.schedCache}).addEventHandlers(factory)
	if err != nil {
		return nil, fmt.Errorf("create estimator server: %w", err)
	}
	gpuSynced, err := s.gpuCache.AddEventHandlers(factory)
	if err != nil {
		return nil, fmt.Errorf("create estimator server: %w", err)
	}
	waitingSynced, err := s.waitingPods.AddEventHandlers(factory)
	if err != nil {
		return nil, fmt.Errorf("create estimator server: %w", err)
	}
	s.handlersSynced = append(append(schedSynced, gpuSynced...), waitingSynced)
	return s, nil
}

// newFramework is Karmada's estimation framework with its in-tree plugins,
// noderesource's answers given by Tessera's plugin (estimator.Registry: the
// same answers, memoised), reading GPU state from gpus.
func newFramework(cfg config.Config, gpus estimator.GPUStateSource, parallelism int, pluginOpts []estimator.Option, opts ...frameworkruntime.Option) (framework.Framework, error) {
	registry, err := estimator.Registry(cfg, gpus, parallelism, pluginOpts...)
	if err != nil {
		return nil, err
	}
	fw, err := frameworkruntime.NewFramework(registry, opts...)
	if err != nil {
		return nil, fmt.Errorf("create estimator framework: %w", err)
	}
	return fw, nil
}

// Start runs the informers, waits until the caches hold the cluster's
// state, and starts probing the API server. It returns once synced.
func (s *Server) Start(ctx context.Context) error {
	s.informerFactory.Start(ctx.Done())
	for typ, ok := range s.informerFactory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("start estimator for cluster %s: informer for %v did not sync", s.cfg.ClusterName, typ)
		}
	}
	// An informer has synced when its store is full; the caches fed by its
	// handlers may still be catching up. Answering before they have would
	// count a partial cluster (Karmada's own estimator has that window).
	if !toolscache.WaitForCacheSync(ctx.Done(), s.handlersSynced...) {
		return fmt.Errorf("start estimator for cluster %s: caches did not receive the initial state: %w", s.cfg.ClusterName, ctx.Err())
	}
	s.informerManager.Start()
	if synced := s.informerManager.WaitForCacheSync(); synced == nil {
		return fmt.Errorf("start estimator for cluster %s: workload informers did not start", s.cfg.ClusterName)
	}
	s.freshness.markContact()
	go s.freshness.run(ctx, s.cfg.ProbeInterval, s.cfg.ProbeTimeout)
	return nil
}

// Serve answers gRPC on lis until ctx ends, then stops gracefully. TLS and
// client verification come from grpcCfg, exactly as Karmada's estimator
// reads them.
func (s *Server) Serve(ctx context.Context, lis net.Listener, grpcCfg *grpcconnection.ServerConfig) error {
	gs, err := grpcCfg.NewServer()
	if err != nil {
		return fmt.Errorf("create gRPC server: %w", err)
	}
	estimatorservice.RegisterEstimatorServer(gs, s)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			gs.GracefulStop()
		case <-done:
			gs.Stop()
		}
	}()
	if err := gs.Serve(lis); err != nil {
		return fmt.Errorf("serve gRPC on %s: %w", lis.Addr(), err)
	}
	return nil
}

// Metrics are the server's Tessera metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// GPUSnapshot is the GPU state the next estimate would read.
func (s *Server) GPUSnapshot() *gpucache.Snapshot { return s.gpuCache.Snapshot() }

// StateAge is how long ago the member's API server last answered.
func (s *Server) StateAge() time.Duration { return s.freshness.Age() }
