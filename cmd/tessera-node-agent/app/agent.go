package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/bindaddr"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpu"
	"github.com/tessera-gpu/tessera/pkg/informerstop"
	"github.com/tessera-gpu/tessera/pkg/nodepublish"
	"github.com/tessera-gpu/tessera/pkg/usagereport"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// Agent is the node agent's running parts: the GPU tracker, the device
// plugin and the node publisher (both fed by the tracker), the health
// probes and the node metrics (with the pod informer they read).
type Agent struct {
	nodeName    string
	tracker     *gpu.Tracker
	plugin      *deviceplugin.Plugin
	publisher   *nodepublish.Publisher
	broadcaster record.EventBroadcaster
	// podInformers feed the pod lister of the metrics and the usage
	// report; nil when both are disabled, so that no pod watch runs for
	// nothing.
	podInformers informers.SharedInformerFactory
	// usage writes the Node's gpu-usage annotation; nil when disabled.
	usage   *usagereport.Reporter
	health  *endpoint // nil when disabled
	metrics *endpoint // nil when disabled
	// liveness answers /healthz and readiness /readyz.
	liveness, readiness []healthCheck
}

// NewAgent discovers the GPUs through lib and builds every part. It listens
// on the health and metrics addresses at once, so that a taken port fails
// here and not later. Run releases what NewAgent took; Close does for an
// Agent that will not run.
func NewAgent(ctx context.Context, cfg config.Config, opts *options.Options, client kubernetes.Interface, lib nvml.Interface) (_ *Agent, err error) {
	if client == nil || lib == nil {
		return nil, errors.New("node agent: no Kubernetes client or no NVML library")
	}
	a := &Agent{nodeName: opts.NodeName}
	defer func() {
		if err != nil {
			a.release()
		}
	}()

	if a.tracker, err = gpu.NewTracker(lib, gpu.TrackerOptionsFromConfig(cfg.Node)); err != nil {
		return nil, fmt.Errorf("node agent on %s: %w", opts.NodeName, err)
	}
	a.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	a.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	recorder := a.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component, Host: opts.NodeName})

	keys := cfg.Keys()
	a.plugin, err = deviceplugin.New(deviceplugin.Options{
		ResourceName:       cfg.Resources.VGPU,
		NodeName:           opts.NodeName,
		DevicePluginDir:    cfg.Node.DevicePluginDir,
		StateDir:           cfg.Node.StateDir,
		HookLibrary:        cfg.Node.HookLibrary,
		Keys:               keys,
		PodResourcesSocket: cfg.Node.PodResourcesSocket,
		LimitsWait:         cfg.Node.LimitsWait.Duration,
	}, a.tracker, client, recorder)
	if err != nil {
		return nil, fmt.Errorf("node agent on %s: %w", opts.NodeName, err)
	}
	a.publisher, err = nodepublish.New(nodepublish.Options{
		NodeName:  opts.NodeName,
		Keys:      keys,
		Resources: cfg.Resources,
	}, a.tracker, client, recorder)
	if err != nil {
		return nil, fmt.Errorf("node agent on %s: %w", opts.NodeName, err)
	}
	// Liveness asks only the kubelet's side: an API server outage must not
	// make the kubelet restart every agent of the cluster.
	registered := healthCheck{name: "device-plugin", check: pluginRegisteredCheck(a.plugin)}
	a.liveness = []healthCheck{registered}
	a.readiness = []healthCheck{registered,
		{name: "node-inventory", check: nodePublishedCheck(opts.NodeName, a.publisher.Published)}}
	if a.health, err = listenEndpoint(ctx, "health probes", bindaddr.On(opts.BindAddress, opts.HealthAddr), healthHandler(a.liveness, a.readiness)); err != nil {
		return nil, err
	}
	if opts.MetricsAddr == "0" && opts.UsageReportInterval == 0 {
		return a, nil
	}
	src, err := newNodePods(cfg, opts.NodeName, client)
	if err != nil {
		return nil, fmt.Errorf("node agent on %s: %w", opts.NodeName, err)
	}
	a.podInformers = src.factory
	if opts.MetricsAddr != "0" {
		handler, err := newMetricsHandler(opts.NodeName, a.tracker, src, a.plugin.Collectors()...)
		if err != nil {
			return nil, err
		}
		if a.metrics, err = listenEndpoint(ctx, "metrics", bindaddr.On(opts.BindAddress, opts.MetricsAddr), handler); err != nil {
			return nil, err
		}
	}
	if opts.UsageReportInterval > 0 {
		a.usage, err = usagereport.New(usagereport.Options{NodeName: opts.NodeName, Keys: keys, Pods: src.pods,
			Regions: src.regions, Client: client, Interval: opts.UsageReportInterval})
		if err != nil {
			return nil, fmt.Errorf("node agent on %s: %w", opts.NodeName, err)
		}
	}
	return a, nil
}

// GPUs returns the GPUs the agent found, with their current health.
func (a *Agent) GPUs() []vgpu.GPU { return a.tracker.GPUs() }

// HealthAddr is the address the health endpoint listens on ("" when
// disabled); with port 0 in --health-addr it tells which port was chosen.
func (a *Agent) HealthAddr() string { return a.health.Addr() }

// MetricsAddr is the address /metrics is served on ("" when disabled).
func (a *Agent) MetricsAddr() string { return a.metrics.Addr() }

// Live is what /healthz answers: nil while the device plugin is registered
// with the kubelet.
func (a *Agent) Live() error { return runChecks(a.liveness) }

// Ready is what /readyz answers: nil while the plugin is registered and
// the Node carries the GPU inventory.
func (a *Agent) Ready() error { return runChecks(a.readiness) }

// Run runs every part until ctx is done or one of them fails, then stops
// them all, waits for every goroutine, and releases NVML. It returns nil
// after a cancelled ctx, and the first failure otherwise.
func (a *Agent) Run(ctx context.Context) error {
	defer a.release()
	// The parts add the node to their own log lines; adding it here too
	// would print it twice.
	logger := klog.FromContext(ctx)
	g, gctx := errgroup.WithContext(ctx)

	// A part that returns nil while nothing asked it to stop has stopped
	// working; that ends the agent, so the kubelet restarts it.
	run := func(name string, fn func(context.Context) error) {
		g.Go(func() error {
			err := fn(gctx)
			switch {
			case err != nil:
				return fmt.Errorf("%s: %w", name, err)
			case gctx.Err() == nil:
				return fmt.Errorf("%s stopped unexpectedly", name)
			}
			return nil
		})
	}
	run("GPU health tracker", a.tracker.Run)
	run("device plugin", a.plugin.Run)
	run("node publisher", a.publisher.Run)
	if a.usage != nil {
		run("GPU usage report", a.usage.Run)
	}
	if factory := a.podInformers; factory != nil {
		// Started here, not in NewAgent, so that Shutdown joins its
		// goroutines before Run returns.
		g.Go(func() error {
			factory.Start(gctx.Done())
			// Waits until the pods are listed or the agent stops; until
			// then the metrics leave allocations out (syncedPods).
			factory.WaitForCacheSync(gctx.Done())
			if gctx.Err() == nil {
				logger.Info("Pods of the node listed", "node", a.nodeName)
			}
			<-gctx.Done()
			informerstop.Shutdown(logger, "pods of node "+a.nodeName, factory, informerstop.Timeout)
			return nil
		})
	}
	a.health.serve(gctx, g)
	a.metrics.serve(gctx, g)
	logger.Info("Node agent running", "node", a.nodeName, "gpus", len(a.tracker.GPUs()))
	err := g.Wait()
	if err != nil {
		logger.Error(err, "Node agent stopping after a failure", "node", a.nodeName)
	} else {
		logger.Info("Node agent stopped", "node", a.nodeName)
	}
	return err
}

// Close releases an Agent that will not be run (Run releases it itself).
func (a *Agent) Close() { a.release() }

// release frees what NewAgent took; safe on a partly built Agent and more
// than once.
func (a *Agent) release() {
	a.health.close()
	a.metrics.close()
	if a.broadcaster != nil {
		a.broadcaster.Shutdown()
		a.broadcaster = nil
	}
	if a.tracker != nil {
		a.tracker.Shutdown() // Idempotent; Run has returned by now.
	}
}
