// Package options holds the scheduler extender's command-line flags.
package options

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/transport"

	"github.com/tessera-gpu/tessera/pkg/command"
	"github.com/tessera-gpu/tessera/scheduler-plugin/extender"
)

// Options are the extender's flags.
type Options struct {
	// ConfigFile is Tessera's configuration file (resource names, annotation
	// prefix); empty means the defaults.
	ConfigFile string
	// Kubeconfig is the client configuration; empty means in-cluster.
	Kubeconfig string
	// BindAddress serves kube-scheduler's filter, prioritize and bind calls.
	BindAddress string
	// MetricsBindAddress serves /metrics; "0" disables it.
	MetricsBindAddress string
	// HealthBindAddress serves /healthz and /readyz; "0" disables it.
	HealthBindAddress string

	KubeAPIQPS   float32
	KubeAPIBurst int

	// FilterBindWait bounds how long a filter call waits for the binds of
	// the pods filtered before it; 0 turns the wait off.
	FilterBindWait time.Duration

	LeaderElection LeaderElection

	// WrapTransport, when set, wraps the API client's transport; not a
	// flag: the end-to-end environment records the API server's refusals
	// through it, as it does for the components it builds clients for.
	WrapTransport transport.WrapperFunc
	// Listen, when set (never by a flag), listens for the servers instead
	// of net.Listen: see command.Server.Listen.
	Listen command.ListenFunc
}

// LeaderElection configures the Lease that makes one replica the binder.
type LeaderElection struct {
	Enabled           bool
	LeaseDuration     time.Duration
	RenewDeadline     time.Duration
	RetryPeriod       time.Duration
	ResourceName      string
	ResourceNamespace string
}

// New returns the defaults. The extender listens on loopback by default:
// it is meant to run beside kube-scheduler (a second container of the
// scheduler's pod, or a host-network pod on each control-plane node).
func New() *Options {
	return &Options{
		BindAddress:        "127.0.0.1:8888",
		MetricsBindAddress: ":8889",
		HealthBindAddress:  ":8890",
		// Every bind is two writes (annotation patch, Binding) and an event;
		// 150 pods a second need about 450 writes a second. The API
		// server's priority and fairness still protects it.
		KubeAPIQPS:     500,
		KubeAPIBurst:   1000,
		FilterBindWait: extender.DefaultBindWait,
		LeaderElection: LeaderElection{
			Enabled:           true,
			LeaseDuration:     15 * time.Second,
			RenewDeadline:     10 * time.Second,
			RetryPeriod:       2 * time.Second,
			ResourceName:      "tessera-scheduler-extender",
			ResourceNamespace: "kube-system",
		},
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "Tessera configuration file (resource names, annotation prefix); empty uses the defaults.")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig; empty uses the in-cluster configuration.")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "host:port where kube-scheduler calls the extender (filter, prioritize, bind).")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress, "host:port serving Prometheus metrics at /metrics; \"0\" disables it.")
	fs.StringVar(&o.HealthBindAddress, "health-probe-bind-address", o.HealthBindAddress, "host:port serving /healthz and /readyz (ready once caches are synced and this replica leads); \"0\" disables it.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Queries per second to the API server.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of queries to the API server.")
	fs.DurationVar(&o.FilterBindWait, "filter-bind-wait", o.FilterBindWait, "How long a filter call waits, at most, for the binds of the pods kube-scheduler filtered before it, so that it sees what they took; 0 turns the wait off.")
	le := &o.LeaderElection
	fs.BoolVar(&le.Enabled, "leader-elect", le.Enabled, "Elect a leader with a Lease before binding; required with more than one replica.")
	fs.DurationVar(&le.LeaseDuration, "leader-elect-lease-duration", le.LeaseDuration, "How long a non-leader waits after the last renewal before taking the lease.")
	fs.DurationVar(&le.RenewDeadline, "leader-elect-renew-deadline", le.RenewDeadline, "How long the leader keeps retrying to renew before it gives up leading.")
	fs.DurationVar(&le.RetryPeriod, "leader-elect-retry-period", le.RetryPeriod, "How long to wait between attempts to acquire or renew the lease.")
	fs.StringVar(&le.ResourceName, "leader-elect-resource-name", le.ResourceName, "Name of the Lease.")
	fs.StringVar(&le.ResourceNamespace, "leader-elect-resource-namespace", le.ResourceNamespace, "Namespace of the Lease.")
}

// Validate reports every problem with the flags at once.
func (o *Options) Validate() error {
	var errs []error
	if err := checkAddress("bind-address", o.BindAddress, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkAddress("metrics-bind-address", o.MetricsBindAddress, true); err != nil {
		errs = append(errs, err)
	}
	if err := checkAddress("health-probe-bind-address", o.HealthBindAddress, true); err != nil {
		errs = append(errs, err)
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d must be positive", o.KubeAPIQPS, o.KubeAPIBurst))
	}
	if o.FilterBindWait < 0 || o.FilterBindWait > extender.MaxBindWait {
		errs = append(errs, fmt.Errorf("--filter-bind-wait %v must be between 0 and %v", o.FilterBindWait, extender.MaxBindWait))
	}
	le := o.LeaderElection
	if le.Enabled {
		switch {
		case le.RetryPeriod <= 0 || le.RenewDeadline <= 0 || le.LeaseDuration <= 0:
			errs = append(errs, errors.New("leader election durations must be positive"))
		case le.LeaseDuration <= le.RenewDeadline:
			errs = append(errs, fmt.Errorf("--leader-elect-lease-duration %v must be longer than --leader-elect-renew-deadline %v", le.LeaseDuration, le.RenewDeadline))
		case le.RenewDeadline <= le.RetryPeriod:
			errs = append(errs, fmt.Errorf("--leader-elect-renew-deadline %v must be longer than --leader-elect-retry-period %v", le.RenewDeadline, le.RetryPeriod))
		}
		if le.ResourceName == "" || le.ResourceNamespace == "" {
			errs = append(errs, errors.New("--leader-elect-resource-name and --leader-elect-resource-namespace must be set"))
		}
	}
	return errors.Join(errs...)
}

func checkAddress(flag, addr string, mayDisable bool) error {
	if mayDisable && addr == "0" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("--%s %q: %w", flag, addr, err)
	}
	return nil
}
