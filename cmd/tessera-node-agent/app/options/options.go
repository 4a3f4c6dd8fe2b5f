// Package options holds the node agent's command-line flags.
package options

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tessera-gpu/tessera/pkg/bindaddr"
	"github.com/tessera-gpu/tessera/pkg/config"
)

// NodeNameEnv is the environment variable that gives the default node name;
// the DaemonSet sets it from spec.nodeName through the downward API.
const NodeNameEnv = "NODE_NAME"

// Options are the node agent's flags.
type Options struct {
	// ConfigFile is Tessera's configuration file; empty means the defaults.
	ConfigFile string
	// NodeName is the Node this agent serves.
	NodeName string
	// Kubeconfig is the client configuration; empty means in-cluster.
	Kubeconfig string
	// HealthAddr serves /healthz and /readyz; "0" disables it.
	HealthAddr string
	// MetricsAddr serves /metrics (pkg/nodemetrics); "0" disables it.
	MetricsAddr string
	// BindAddress is the IP address HealthAddr and MetricsAddr listen on
	// when they name only a port; empty means every interface. The chart
	// sets it to the pod's IP when the agent uses the host's network.
	BindAddress string
	// UsageReportInterval is how often the containers' observed GPU use is
	// read for the Node's gpu-usage annotation (pkg/usagereport); 0
	// disables the report.
	UsageReportInterval time.Duration

	KubeAPIQPS   float32
	KubeAPIBurst int
}

// New returns the defaults, the node name taken from $NODE_NAME.
func New() *Options {
	return &Options{
		NodeName: os.Getenv(NodeNameEnv),
		// All interfaces: the kubelet probes the pod's IP, and the agent
		// runs with the host network.
		HealthAddr: ":8080",
		// The port the Helm chart's nodeAgent.metrics.port defaults to.
		MetricsAddr:         ":9395",
		UsageReportInterval: 30 * time.Second,
		// The agent writes rarely (its Node on GPU changes, a pod
		// annotation per allocation); the defaults leave room for bursts
		// of allocations after a node restart.
		KubeAPIQPS:   20,
		KubeAPIBurst: 40,
	}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "Tessera configuration file (resource names, annotation prefix, node settings); empty uses the defaults.")
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "Name of the Node this agent runs on; defaults to $"+NodeNameEnv+".")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "Path to a kubeconfig; empty uses the in-cluster configuration.")
	fs.StringVar(&o.HealthAddr, "health-addr", o.HealthAddr, "host:port serving /healthz (ok while the device plugin is registered with the kubelet) and /readyz (ok once, in addition, the Node carries the GPU inventory); \"0\" disables it.")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", o.MetricsAddr, "host:port serving Prometheus /metrics: per GPU and per container; \"0\" disables it.")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "IP address that --health-addr and --metrics-addr listen on when they give only a port (\":8080\"); empty listens on every interface. With the host's network, set it to the pod's IP (the chart does) so that the ports are not open on every interface of the node.")
	fs.DurationVar(&o.UsageReportInterval, "usage-report-interval", o.UsageReportInterval, "How often the containers' observed GPU memory is read for the Node's gpu-usage annotation (written when it changes, or every 10 minutes; what `tessera pods` shows); 0 disables it.")
	fs.Float32Var(&o.KubeAPIQPS, "kube-api-qps", o.KubeAPIQPS, "Queries per second to the API server.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", o.KubeAPIBurst, "Burst of queries to the API server.")
}

// Validate reports every problem with the flags at once.
func (o *Options) Validate() error {
	var errs []error
	switch {
	case o.NodeName == "":
		errs = append(errs, fmt.Errorf("--node-name is empty and $%s is not set", NodeNameEnv))
	default:
		if problems := validation.IsDNS1123Subdomain(o.NodeName); len(problems) > 0 {
			errs = append(errs, fmt.Errorf("--node-name %q is not a valid node name: %s", o.NodeName, strings.Join(problems, "; ")))
		}
	}
	for _, a := range []struct{ flag, addr string }{
		{"--health-addr", o.HealthAddr},
		{"--metrics-addr", o.MetricsAddr},
	} {
		if err := validateListenAddr(a.flag, a.addr); err != nil {
			errs = append(errs, err)
		}
	}
	if err := bindaddr.Check("--bind-address", o.BindAddress); err != nil {
		errs = append(errs, err)
	}
	if o.UsageReportInterval < 0 {
		errs = append(errs, fmt.Errorf("--usage-report-interval %v is negative (0 disables the report)", o.UsageReportInterval))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst <= 0 {
		errs = append(errs, fmt.Errorf("--kube-api-qps %v and --kube-api-burst %d must be positive", o.KubeAPIQPS, o.KubeAPIBurst))
	}
	return errors.Join(errs...)
}

// validateListenAddr checks a host:port flag; "0" means disabled.
func validateListenAddr(flag, addr string) error {
	if addr == "0" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s %q: %w", flag, addr, err)
	} else if port == "" {
		return fmt.Errorf("%s %q has no port", flag, addr)
	}
	return nil
}

// LoadConfig reads --config, or returns the defaults when it is empty. Its
// errors name the file.
func (o *Options) LoadConfig() (config.Config, error) {
	if o.ConfigFile == "" {
		return config.Default(), nil
	}
	return config.Load(o.ConfigFile)
}
