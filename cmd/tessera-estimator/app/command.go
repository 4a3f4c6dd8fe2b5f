// Package app is the tessera-estimator command: Tessera's drop-in
// replacement for karmada-scheduler-estimator, deployed behind the Service
// karmada-scheduler-estimator-<cluster> on the same port with the same
// flags, answering with Karmada's stock plugins plus Tessera's exact vGPU
// fit.
package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/logs"
	logsv1 "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/term"
	"k8s.io/klog/v2"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/karmada-io/karmada/pkg/features"
	"github.com/karmada-io/karmada/pkg/sharedcli"
	"github.com/karmada-io/karmada/pkg/sharedcli/klogflag"
	"github.com/karmada-io/karmada/pkg/sharedcli/profileflag"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"

	"github.com/tessera-gpu/tessera/cmd/tessera-estimator/app/options"
	"github.com/tessera-gpu/tessera/pkg/bindaddr"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/server"
)

// Name is the command's name.
const Name = "tessera-estimator"

// HTTP timeouts, as karmada-scheduler-estimator sets them (slowloris).
const (
	readHeaderTimeout = 32 * time.Second
	readTimeout       = 5 * time.Minute
	writeTimeout      = 5 * time.Minute
	shutdownTimeout   = 10 * time.Second
)

// NewCommand builds the command; it runs until ctx ends.
func NewCommand(ctx context.Context) *cobra.Command {
	logConfig := logsv1.NewLoggingConfiguration()
	fss := cliflag.NamedFlagSets{}
	logsFlagSet := fss.FlagSet("logs")
	logs.AddFlags(logsFlagSet, logs.SkipLoggingConfigurationFlags())
	logsv1.AddFlags(logConfig, logsFlagSet)
	klogflag.Add(logsFlagSet)
	genericFlagSet := fss.FlagSet("generic")
	opts := options.NewOptions()
	opts.AddFlags(genericFlagSet)

	cmd := &cobra.Command{
		Use: Name,
		Long: `The tessera-estimator answers karmada-scheduler's Estimator gRPC calls for one member
cluster, as karmada-scheduler-estimator does, with Karmada's stock plugins plus Tessera's
exact, fragmentation-aware vGPU fit. It takes karmada-scheduler-estimator's flags.`,
		SilenceUsage: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if err := logsv1.ValidateAndApply(logConfig, features.FeatureGate); err != nil {
				return fmt.Errorf("logging flags: %w", err)
			}
			logs.InitLogs()
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			cfg, errs := opts.Validate()
			if len(errs) != 0 {
				return errs.ToAggregate()
			}
			return Run(ctx, opts, cfg)
		},
	}
	cmd.Flags().AddFlagSet(genericFlagSet)
	cmd.Flags().AddFlagSet(logsFlagSet)
	cols, _, _ := term.TerminalSize(cmd.OutOrStdout())
	sharedcli.SetUsageAndHelpFunc(cmd, fss, cols)
	return cmd
}

// Run serves until ctx ends or a server fails.
func Run(ctx context.Context, opts *options.Options, cfg config.Config) error {
	k := opts.Karmada
	klog.InfoS("Starting Tessera estimator", "cluster", k.ClusterName, "grpcPort", k.ServerPort)
	restConfig, err := clientcmd.BuildConfigFromFlags(k.Master, k.KubeConfig)
	if err != nil {
		return fmt.Errorf("build member cluster client config: %w", err)
	}
	restConfig.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(k.ClusterAPIQPS, k.ClusterAPIBurst)
	clients, err := newClients(restConfig)
	if err != nil {
		return err
	}
	srv, err := server.New(ctx, clients, server.Config{
		ClusterName: k.ClusterName, Tessera: cfg, Parallelism: k.Parallelism,
		ProbeInterval: opts.APIProbeInterval, ProbeTimeout: opts.APIProbeTimeout,
	})
	if err != nil {
		return err
	}
	profileflag.ListenAndServe(k.ProfileOpts)

	group, ctx := errgroup.WithContext(ctx)
	metricsHandler := promhttp.HandlerFor(prometheus.Gatherers{ctrlmetrics.Registry, srv.Metrics().Registry()},
		promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
	grpcAddr, healthAddr, metricsAddr := listenAddrs(opts)
	for addr, mux := range httpMuxes(healthAddr, metricsAddr, metricsHandler) {
		group.Go(func() error { return serveHTTP(ctx, addr, mux) })
	}
	group.Go(func() error {
		if err := srv.Start(ctx); err != nil {
			return err
		}
		lis, err := net.Listen("tcp", grpcAddr)
		if err != nil {
			return fmt.Errorf("listen for gRPC on %s: %w", grpcAddr, err)
		}
		klog.InfoS("Serving the Estimator gRPC service", "address", lis.Addr().String())
		return srv.Serve(ctx, lis, &grpcconnection.ServerConfig{
			ServerPort:               k.ServerPort,
			InsecureSkipClientVerify: k.InsecureSkipGrpcClientVerify,
			ClientAuthCAFile:         k.GrpcClientCaFile,
			CertFile:                 k.GrpcAuthCertFile,
			KeyFile:                  k.GrpcAuthKeyFile,
		})
	})
	return group.Wait()
}

func newClients(restConfig *rest.Config) (server.Clients, error) {
	kube, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return server.Clients{}, fmt.Errorf("create member cluster client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(restConfig)
	if err != nil {
		return server.Clients{}, fmt.Errorf("create member cluster dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		return server.Clients{}, fmt.Errorf("create member cluster discovery client: %w", err)
	}
	return server.Clients{Kube: kube, Dynamic: dyn, Discovery: disc}, nil
}

// listenAddrs are the addresses the gRPC server, /healthz and /metrics
// listen on: Karmada's flags, placed on --bind-address where they give
// only a port (gRPC: on --grpc-bind-address when it is set).
func listenAddrs(opts *options.Options) (grpcAddr, healthAddr, metricsAddr string) {
	k := opts.Karmada
	return opts.GRPCAddress(), bindaddr.On(opts.BindAddress, k.HealthProbeBindAddress), bindaddr.On(opts.BindAddress, k.MetricsBindAddress)
}

// httpMuxes lays out /healthz and /metrics on their addresses ("0"
// disables one; the same address serves both), as Karmada's estimator does.
func httpMuxes(healthAddr, metricsAddr string, metrics http.Handler) map[string]*http.ServeMux {
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if healthAddr != "0" {
		mux(healthAddr).HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte("ok"))
		})
	}
	if metricsAddr != "0" {
		mux(metricsAddr).Handle("/metrics", metrics)
	}
	return muxes
}

// serveHTTP serves until ctx ends, then shuts down.
func serveHTTP(ctx context.Context, addr string, mux *http.ServeMux) error {
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen for HTTP on %s: %w", addr, err)
	}
	klog.InfoS("Serving HTTP", "address", lis.Addr().String())
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP on %s: %w", addr, err)
	}
	return nil
}
