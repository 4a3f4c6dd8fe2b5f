// Package options holds the tessera-estimator's flags. They are
// karmada-scheduler-estimator's own flags (registered by Karmada's options
// package, so names, defaults and meaning cannot drift), plus Tessera's.
package options

import (
	"time"

	"github.com/spf13/pflag"

	karmadaoptions "github.com/karmada-io/karmada/cmd/scheduler-estimator/app/options"
)

// Defaults of Tessera's own flags.
const (
	DefaultAPIProbeInterval = 10 * time.Second
	DefaultAPIProbeTimeout  = 5 * time.Second
)

// Options are every flag of the command.
type Options struct {
	// Karmada are karmada-scheduler-estimator's flags: --kubeconfig,
	// --master, --cluster-name, --server-port (10352), the --grpc-* TLS
	// flags, --insecure-skip-grpc-client-verify, --kube-api-qps/-burst,
	// --parallelism, --metrics-bind-address, --health-probe-bind-address,
	// --feature-gates and the profiling flags.
	Karmada *karmadaoptions.Options
	// ConfigFile is Tessera's configuration file (resource names,
	// annotation prefix); empty means the defaults.
	ConfigFile string
	// GRPCBindAddress is the IP address the gRPC server listens on, with
	// Karmada's --server-port; empty means every interface, as
	// karmada-scheduler-estimator (which has no such flag) listens.
	GRPCBindAddress string
	// BindAddress is the IP address /metrics and /healthz listen on when
	// their flags give only a port, and the gRPC server when
	// GRPCBindAddress is empty; empty means every interface. The chart
	// sets it to the pod's IP when the estimator uses the host's network.
	BindAddress string
	// APIProbeInterval and APIProbeTimeout govern how often the member's API
	// server is checked, for the state-age metric and log.
	APIProbeInterval, APIProbeTimeout time.Duration
}

// NewOptions returns options with Tessera's defaults; Karmada's defaults
// are set when its flags are added.
func NewOptions() *Options {
	return &Options{
		Karmada:          karmadaoptions.NewOptions(),
		APIProbeInterval: DefaultAPIProbeInterval,
		APIProbeTimeout:  DefaultAPIProbeTimeout,
	}
}

// AddFlags registers every flag on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	o.Karmada.AddFlags(fs)
	// The flag is Karmada's; Tessera gives the name a second use that a
	// user reading --help should know about.
	if f := fs.Lookup("cluster-name"); f != nil {
		f.Usage += " Tessera also puts it in the cluster label of every metric it exports (tessera_estimator_*, tessera_cluster_*), so it must be the member's name in Karmada and unique in the fleet."
	}
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "Path to Tessera's configuration file (resource names and annotation prefix shared by every Tessera component). Empty uses the defaults.")
	fs.StringVar(&o.GRPCBindAddress, "grpc-bind-address", o.GRPCBindAddress, "IP address the Estimator gRPC service listens on (with --server-port); empty listens on every interface, as karmada-scheduler-estimator does.")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "IP address that --metrics-bind-address and --health-probe-bind-address listen on when they give only a port (\":8080\"), and the gRPC server when --grpc-bind-address is empty; empty listens on every interface. With the host's network, set it to the pod's IP (the chart does) so that the ports are not open on every interface of the node. Tessera's own flag; karmada-scheduler-estimator has none.")
	fs.DurationVar(&o.APIProbeInterval, "api-probe-interval", o.APIProbeInterval, "How often to check that the member cluster's API server answers; while it does not, the estimator answers from its last state and reports that state's age.")
	fs.DurationVar(&o.APIProbeTimeout, "api-probe-timeout", o.APIProbeTimeout, "How long one API server check may take.")
}
