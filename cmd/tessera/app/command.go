// Package app is the tessera command: the fleet view of a Karmada control
// plane's GPUs. `fleet`, `fit` and `pods` print what pkg/fleet reads
// through Karmada's cluster proxy; `dashboard` serves it as a web page.
package app

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera/app/options"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// kubectlPluginName is the binary's name when installed as a kubectl plugin.
const kubectlPluginName = "kubectl-tessera"

// Main runs the command with args and returns the process exit code. Errors
// are printed as one line on stderr, never with a stack trace.
func Main(ctx context.Context, program string, args []string, stdout, stderr io.Writer) int {
	cmd := NewCommand(ctx, program, stdout, stderr)
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 1
	}
	return 0
}

// NewCommand builds the command tree. program is the binary's name, so
// that help reads "kubectl tessera" when run as a kubectl plugin.
func NewCommand(ctx context.Context, program string, stdout, stderr io.Writer) *cobra.Command {
	global := options.NewGlobal()
	cmd := &cobra.Command{
		Use:   "tessera",
		Short: "Show the GPU fleet of a Karmada control plane: free GPUs, what fits, who uses what",
		Long: `tessera reads every member cluster of a Karmada control plane through Karmada's cluster
proxy, with your kubeconfig, and shows its Tessera GPUs: per cluster and GPU model what is
free, the largest block free on a single GPU, and how many replicas of a workload fit, exactly
per GPU, beside what Karmada's own estimate says.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			// The client libraries log through klog; a command-line tool
			// reports errors itself and keeps stderr for them.
			klog.SetOutput(io.Discard)
			klog.LogToStderr(false)
			return global.Validate()
		},
	}
	if program == kubectlPluginName {
		// kubectl runs kubectl-tessera for "kubectl tessera"; help says so.
		cmd.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl tessera"}
	}
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	global.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		newFleetCommand(global, stdout),
		newFitCommand(global, stdout),
		newPodsCommand(global, stdout),
		newDashboardCommand(global, stdout, stderr),
	)
	return cmd
}

// readFleet reads the fleet once with the global flags.
func readFleet(ctx context.Context, global *options.Global) (*fleet.State, error) {
	restConfig, err := global.RESTConfig()
	if err != nil {
		return nil, err
	}
	opts, err := global.ReaderOptions()
	if err != nil {
		return nil, err
	}
	reader, err := fleet.NewReader(restConfig, opts)
	if err != nil {
		return nil, err
	}
	return reader.Read(ctx)
}

// noArgs rejects positional arguments with a message naming them.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), strings.Join(args, " "))
	}
	return nil
}
