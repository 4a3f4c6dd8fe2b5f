// Package options holds the tessera command's flags and turns them into
// what the fleet package needs: a client configuration for the Karmada API
// server, Tessera's configuration, and a replica's pod template for fit.
package options

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// Output formats.
const (
	OutputTable = ""
	OutputWide  = "wide"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// Global are the flags every subcommand takes: how to reach Karmada, as
// kubectl reaches an API server, and Tessera's configuration.
type Global struct {
	// Kubeconfig and Context select the Karmada API server; empty means
	// client-go's usual rules (KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	Context    string
	// ConfigFile is Tessera's configuration (resource names, annotation
	// prefix); empty means the defaults.
	ConfigFile string
	// Clusters restricts the view to these member clusters.
	Clusters []string
	// Timeout bounds the read of each member cluster.
	Timeout time.Duration
}

// NewGlobal returns the defaults.
func NewGlobal() *Global { return &Global{Timeout: fleet.DefaultMemberTimeout} }

// AddFlags registers the global flags.
func (g *Global) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&g.Kubeconfig, "kubeconfig", g.Kubeconfig, "Path to the kubeconfig of the Karmada API server (default: $KUBECONFIG or ~/.kube/config).")
	fs.StringVar(&g.Context, "context", g.Context, "The kubeconfig context to use.")
	fs.StringVar(&g.ConfigFile, "config", g.ConfigFile, "Tessera's configuration file, for clusters that renamed its resources or annotation prefix.")
	fs.StringSliceVar(&g.Clusters, "cluster", g.Clusters, "Only these member clusters (repeat or comma-separate).")
	fs.DurationVar(&g.Timeout, "timeout", g.Timeout, "How long to wait for each member cluster.")
}

// Validate checks the global flags.
func (g *Global) Validate() error {
	if g.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, not %v", g.Timeout)
	}
	if slices.Contains(g.Clusters, "") {
		return errors.New("--cluster names an empty cluster")
	}
	return nil
}

// RESTConfig loads the client configuration for the Karmada API server.
func (g *Global) RESTConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = g.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: g.Context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "tessera-cli"
	return cfg, nil
}

// TesseraConfig loads Tessera's configuration, or the defaults.
func (g *Global) TesseraConfig() (config.Config, error) {
	if g.ConfigFile == "" {
		return config.Default(), nil
	}
	return config.Load(g.ConfigFile)
}

// ReaderOptions are the fleet reader's options from the flags.
func (g *Global) ReaderOptions() (fleet.Options, error) {
	cfg, err := g.TesseraConfig()
	if err != nil {
		return fleet.Options{}, err
	}
	return fleet.Options{Config: cfg, Clusters: g.Clusters, MemberTimeout: g.Timeout}, nil
}

// ValidateOutput checks an -o value; wide is allowed only where it means
// something.
func ValidateOutput(output string, allowWide bool) error {
	switch output {
	case OutputTable, OutputJSON, OutputYAML:
		return nil
	case OutputWide:
		if allowWide {
			return nil
		}
	}
	formats := "json, yaml"
	if allowWide {
		formats = "wide, json, yaml"
	}
	return fmt.Errorf("-o %q: want one of %s (or nothing for a table)", output, formats)
}

// readFile reads a file, or standard input for "-".
func readFile(path string) ([]byte, error) {
	if path == "-" {
		return readLimited(os.Stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}
