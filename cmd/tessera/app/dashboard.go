package app

import (
	"flag"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera/app/options"
	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/pkg/fleetweb"
)

// Defaults of `tessera dashboard`.
const (
	defaultDashboardListen  = "127.0.0.1:8080"
	defaultDashboardRefresh = 10 * time.Second
)

func newDashboardCommand(global *options.Global, stdout, stderr io.Writer) *cobra.Command {
	listen, refresh := defaultDashboardListen, defaultDashboardRefresh
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the fleet as a read-only web page, refreshed on an interval, and the JSON it is drawn from",
		Long: `dashboard reads the fleet as 'tessera fleet' does, again every --refresh, and serves a
read-only web page of it: a row per cluster and GPU model, every GPU as a tile with what each
pod holds, "what fits" per cluster (Tessera's exact count beside Karmada's estimate) and the
fleet's vGPU pods. GET /api/fleet is the same JSON as 'tessera fleet -o json'; POST /api/fit
answers as 'tessera fit -o json'. Every asset is in the binary: nothing is fetched from the
internet.

It listens on 127.0.0.1 by default and then answers only to localhost names. The page shows
whatever your kubeconfig may read: on any other address, put it behind authentication.`,
		Example: `  tessera dashboard
  tessera dashboard --listen 127.0.0.1:9090 --refresh 30s --cluster member-a,member-b`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if refresh <= 0 {
				return fmt.Errorf("--refresh must be positive, not %v", refresh)
			}
			ctx := cmd.Context()
			// The root command silences klog for one-shot commands; a server
			// logs its failed reads, to the process's standard error.
			klog.LogToStderr(true)
			cfg, err := global.TesseraConfig()
			if err != nil {
				return err
			}
			reader, err := newFleetReader(global)
			if err != nil {
				return err
			}
			poller, err := fleetweb.NewPoller(reader.Read, refresh)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen %s: %w", listen, err)
			}
			loopback := isLoopbackAddr(ln.Addr())
			srv, err := fleetweb.NewServer(poller, fleetweb.Options{Config: cfg, Refresh: refresh, LoopbackHostsOnly: loopback})
			if err != nil {
				ln.Close()
				return err
			}
			go poller.Run(ctx)
			fmt.Fprintf(stdout, "Serving the fleet page on http://%s/ (refreshed every %v; Ctrl-C stops it)\n", ln.Addr(), refresh)
			if !loopback {
				fmt.Fprintf(stderr, "warning: %s is not a loopback address: whoever reaches it sees the fleet as your kubeconfig does; put it behind authentication\n", ln.Addr())
			}
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", listen, "Address to serve the page on; the default answers only this machine.")
	cmd.Flags().DurationVar(&refresh, "refresh", refresh, "How often the fleet is read again (and the page refreshes).")
	// A long-running server takes klog's verbosity, as Tessera's other servers do.
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	cmd.Flags().AddGoFlag(klogFlags.Lookup("v"))
	return cmd
}

// newFleetReader is the one fleet reader of the dashboard's lifetime: it
// keeps each member's last good data, so an unreachable member is shown
// with its last state and that state's age.
func newFleetReader(global *options.Global) (*fleet.Reader, error) {
	restConfig, err := global.RESTConfig()
	if err != nil {
		return nil, err
	}
	restConfig.UserAgent = "tessera-dashboard"
	opts, err := global.ReaderOptions()
	if err != nil {
		return nil, err
	}
	return fleet.NewReader(restConfig, opts)
}

// isLoopbackAddr reports whether a listener is reachable only from this
// machine.
func isLoopbackAddr(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
