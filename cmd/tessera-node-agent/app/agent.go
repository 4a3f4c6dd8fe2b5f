package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpu"
	"github.com/tessera-gpu/tessera/pkg/nodepublish"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// healthShutdownTimeout bounds how long an in-flight probe may finish.
const healthShutdownTimeout = 5 * time.Second

// Agent is the node agent's running parts: the GPU tracker, the device
// plugin and the node publisher (both fed by the tracker), and the health
// endpoint.
type Agent struct {
	nodeName    string
	tracker     *gpu.Tracker
	plugin      *deviceplugin.Plugin
	publisher   *nodepublish.Publisher
	broadcaster record.EventBroadcaster
	health      net.Listener // nil when disabled, and once Run serves it
	healthAddr  string       // the address health listens on; "" when disabled
	checks      []healthCheck
}

// NewAgent discovers the GPUs through lib and builds every part. It listens
// on the health address at once, so that a taken port fails here and not
// later. Run releases what NewAgent took; Close does for an Agent that will
// not run.
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
	pluginDevices := &watchedDevices{DeviceSource: a.tracker}
	a.plugin, err = deviceplugin.New(deviceplugin.Options{
		ResourceName:    cfg.Resources.VGPU,
		NodeName:        opts.NodeName,
		DevicePluginDir: cfg.Node.DevicePluginDir,
		StateDir:        cfg.Node.StateDir,
		HookLibrary:     cfg.Node.HookLibrary,
		Keys:            keys,
	}, pluginDevices, client, recorder)
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
	a.checks = []healthCheck{
		{name: "device-plugin", check: pluginRegisteredCheck(a.plugin, pluginDevices.watched)},
		{name: "node-inventory", check: nodePublishedCheck(opts.NodeName, a.publisher.Published)},
	}
	if opts.HealthAddr != "0" {
		if a.health, err = (&net.ListenConfig{}).Listen(ctx, "tcp", opts.HealthAddr); err != nil {
			return nil, fmt.Errorf("listen for health probes on %s: %w", opts.HealthAddr, err)
		}
		a.healthAddr = a.health.Addr().String()
	}
	return a, nil
}

// GPUs returns the GPUs the agent found, with their current health.
func (a *Agent) GPUs() []vgpu.GPU { return a.tracker.GPUs() }

// HealthAddr is the address the health endpoint listens on ("" when
// disabled); with port 0 in --health-addr it tells which port was chosen.
func (a *Agent) HealthAddr() string { return a.healthAddr }

// Healthy is what /healthz answers: nil once the plugin is registered and
// the Node is published.
func (a *Agent) Healthy() error {
	var errs []error
	for _, c := range a.checks {
		if err := c.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

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
	if a.health != nil {
		srv := &http.Server{
			Handler:           healthHandler(a.checks),
			ReadHeaderTimeout: 10 * time.Second,
			BaseContext:       func(net.Listener) context.Context { return gctx },
		}
		ln := a.health
		a.health = nil // Serve owns it now, and closes it.
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serve health probes on %s: %w", ln.Addr(), err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(gctx), healthShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				logger.Error(err, "Health server did not shut down cleanly")
			}
			return nil
		})
		logger.Info("Serving health probes", "address", ln.Addr().String())
	}
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
	if a.health != nil {
		_ = a.health.Close()
		a.health = nil
	}
	if a.broadcaster != nil {
		a.broadcaster.Shutdown()
		a.broadcaster = nil
	}
	if a.tracker != nil {
		a.tracker.Shutdown() // Idempotent; Run has returned by now.
	}
}
