package app

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/cmd/tessera/app/options"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

func newFitCommand(global *options.Global, stdout io.Writer) *cobra.Command {
	opts := &options.Fit{}
	cmd := &cobra.Command{
		Use:   "fit",
		Short: "How many replicas fit in each member cluster, exactly per GPU, beside Karmada's own estimate",
		Example: `  tessera fit --vgpu 1 --memory 40Gi
  tessera fit --vgpu 2 --memory 80Gi --cores 60 --replicas 3
  tessera fit -f deployment.yaml -o json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := global.TesseraConfig()
			if err != nil {
				return err
			}
			req, err := opts.Request(cfg)
			if err != nil {
				return err
			}
			st, err := readFleet(cmd.Context(), global)
			if err != nil {
				return err
			}
			res, err := st.Fit(cmd.Context(), req)
			if err != nil {
				return err
			}
			if ok, err := printData(stdout, opts.Output, res); ok {
				return err
			}
			return writeFitTable(stdout, res)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func writeFitTable(w io.Writer, res *fleet.FitResult) error {
	if _, err := fmt.Fprintf(w, "One replica asks for %s.\n", resourceWords(res.Replica)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tTESSERA (EXACT)\tKARMADA GENERAL\tKARMADA WITH TESSERA\tFIRST REPLICA ON")
	for _, a := range res.Clusters {
		if !a.Reachable {
			fmt.Fprintf(tw, "%s\t-\t%d\t-\tunreachable: %s\n", a.Cluster, a.Karmada, a.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", a.Cluster, a.Tessera, a.Karmada, a.Scheduler, a.First.String())
	}
	fmt.Fprintf(tw, "TOTAL\t%d\t%d\t\t\n", res.Tessera, res.Karmada)
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Replicas == 0 {
		return nil
	}
	verdict := fmt.Sprintf("%d replicas fit: Tessera counts room for %d in the fleet.", res.Replicas, res.Tessera)
	if res.Tessera < int64(res.Replicas) {
		verdict = fmt.Sprintf("%d replicas do NOT fit: only %d do, by Tessera's exact count.", res.Replicas, res.Tessera)
	}
	_, err := fmt.Fprintln(w, verdict)
	return err
}

// resourceWords lists a replica's resources in a stable order.
func resourceWords(rl corev1.ResourceList) string {
	if len(rl) == 0 {
		return "nothing but a pod slot"
	}
	names := make([]string, 0, len(rl))
	for name := range rl {
		names = append(names, string(name))
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		q := rl[corev1.ResourceName(name)]
		parts = append(parts, name+"="+q.String())
	}
	return strings.Join(parts, " ")
}
