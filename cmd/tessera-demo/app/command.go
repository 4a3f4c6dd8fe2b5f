// Package app is the tessera-demo command, what `make demo` runs. By
// default it runs Tessera across clusters with real servers (package
// test/e2e/env): a Karmada control plane and two member clusters on
// 127.0.0.1, Tessera's estimator, extender, node agents on mock GPUs and a
// simulated kubelet; it runs the headline scenario with Tessera's estimator
// and then with Karmada's stock estimate, reports each, and tears all down.
// With --preview it runs the older in-process preview of one node instead.
package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
)

// NewCommand returns the root command.
func NewCommand() *cobra.Command {
	opts := Options{Stock: true, StepTimeout: 4 * time.Minute}
	preview := PreviewOptions{Machine: "dgxa100", NodeName: "demo-node", StepTimeout: 30 * time.Second}
	var runPreview bool
	cmd := &cobra.Command{
		Use:   "tessera-demo",
		Short: "Tessera across clusters: real Karmada and Kubernetes servers on loopback, mock GPUs",
		Long: `tessera-demo builds (once) and starts a Karmada control plane and two member
clusters of real servers on 127.0.0.1, with Tessera's scheduler extender and
estimator and a node agent on go-nvml mock GPUs per node. Member-a has 8 GPUs
that are mostly used; member-b has 2 empty ones. It divides a Deployment of 4
replicas x 1 vGPU x 40 GiB between them by available replicas, first with
Tessera's estimator, then with Karmada's stock estimate, and reports per
cluster the GPUs, the free memory of each, both estimates, where the replicas
landed and their state. Then it tears everything down.

With --preview it runs the in-process preview of one node instead (the node
agent against a fake API server and a fake kubelet; no servers to build).`,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runPreview {
				if preview.Machine == "" || preview.NodeName == "" {
					return errors.New("--machine and --node-name must not be empty")
				}
				return RunPreview(cmd.Context(), cmd.OutOrStdout(), preview)
			}
			logPath, closeLog, err := logToFile()
			if err != nil {
				return err
			}
			err = Run(cmd.Context(), cmd.OutOrStdout(), opts)
			closeLog(err == nil && !opts.Keep)
			if err != nil {
				return fmt.Errorf("%w\n(this process's own log: %s)", err, logPath)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.Verbose, "verbose", opts.Verbose, "Print every server's start too (address, time, log file); with --preview, the agent's logs.")
	fs.BoolVar(&opts.Keep, "keep", opts.Keep, "Keep every server's and component's log after a successful run (always kept after a failure).")
	fs.BoolVar(&opts.Stock, "stock", opts.Stock, "Also run the scenario against Karmada's stock estimate, for comparison.")
	fs.DurationVar(&opts.StepTimeout, "step-timeout", opts.StepTimeout, "How long to wait for each step once the servers run.")
	fs.StringVar(&opts.Serve, "serve", opts.Serve, "Keep the clusters running after the run with Tessera's estimator and serve the fleet page (tessera dashboard) on this address until Ctrl-C, e.g. 127.0.0.1:8080.")
	fs.BoolVar(&runPreview, "preview", false, "Run the in-process preview of one node instead of the multi-cluster demo.")
	fs.StringVar(&preview.Machine, "machine", preview.Machine, "With --preview: go-nvml mock machine (dgxa100, dgxh100, dgxh200 or dgxb200).")
	fs.StringVar(&preview.NodeName, "node-name", preview.NodeName, "With --preview: name of the fake Node; it also seeds the mock GPU UUIDs.")
	cmd.PreRun = func(cmd *cobra.Command, _ []string) {
		preview.Verbose = opts.Verbose
		if cmd.Flags().Changed("step-timeout") {
			preview.StepTimeout = opts.StepTimeout
		}
	}
	return cmd
}

// logToFile sends this process's klog output (the in-process components log
// to files of their own; this is what is left: client libraries, the GPU
// tracker) to a temporary file, so that the terminal shows the demo's
// progress and report only. The returned function closes the file and,
// when asked, removes it.
func logToFile() (string, func(remove bool), error) {
	f, err := os.CreateTemp("", "tessera-demo-*.log")
	if err != nil {
		return "", nil, fmt.Errorf("create the demo's log file: %w", err)
	}
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for name, value := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "stderrthreshold": "FATAL"} {
		if err := fs.Set(name, value); err != nil {
			_ = f.Close()
			return "", nil, fmt.Errorf("configure klog: %w", err)
		}
	}
	klog.SetOutput(f)
	return f.Name(), func(remove bool) {
		klog.Flush()
		_ = f.Close()
		if remove {
			_ = os.Remove(f.Name())
		}
	}, nil
}
