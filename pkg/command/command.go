// Package command is what the mains of Tessera's daemons (node agent,
// scheduler extender, admission webhook) share: the cobra command with
// klog's flags, the signal handling of main, and their HTTP servers'
// start and graceful stop.
package command

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

// Flags are a daemon's options.
type Flags interface {
	AddFlags(fs *pflag.FlagSet)
	// Validate reports every problem with the flags at once.
	Validate() error
}

// New returns a daemon's root command: it validates opts, then calls run
// with the command's context. klog's flags are added beside opts'.
func New(use, short, long string, opts Flags, run func(context.Context) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:          use,
		Short:        short,
		Long:         long,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := opts.Validate(); err != nil {
				return err
			}
			return run(cmd.Context())
		},
	}
	opts.AddFlags(cmd.Flags())
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	cmd.Flags().AddGoFlagSet(klogFlags)
	return cmd
}

// Main runs cmd until it returns or SIGINT/SIGTERM cancels its context, and
// returns the process's exit code; failure names the daemon in the log
// line of an error ("Node agent failed").
func Main(cmd *cobra.Command, failure string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer klog.Flush()
	if err := cmd.ExecuteContext(ctx); err != nil {
		klog.ErrorS(err, failure)
		return 1
	}
	return 0
}
