package app

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-gpu/tessera/cmd/tessera/app/options"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

func newFleetCommand(global *options.Global, stdout io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "A row per member cluster and GPU model: GPUs, free slots, memory and cores, the largest free block",
		Example: `  tessera fleet
  tessera fleet -o wide          # and a row per GPU
  tessera fleet -o json --cluster member-a`,
		Args: noArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return options.ValidateOutput(output, true)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := readFleet(cmd.Context(), global)
			if err != nil {
				return err
			}
			if ok, err := printData(stdout, output, st.Fleet); ok {
				return err
			}
			return writeFleetTable(stdout, st.Fleet, output == options.OutputWide, time.Now())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: wide, json or yaml (default: a table).")
	return cmd
}

// writeFleetTable prints a row per cluster and model, a line for each
// cluster without data, and the fleet's totals; wide adds a row per GPU.
func writeFleetTable(w io.Writer, f fleet.Fleet, wide bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSTATUS\tMODEL\tNODES\tGPUS\tHEALTHY\tSLOTS FREE/TOTAL\tMEMORY GiB FREE/TOTAL\tCORES FREE/TOTAL\tLARGEST FREE GiB\tWAITING PODS")
	for _, c := range f.Clusters {
		st := status(c, now)
		if len(c.Models) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t%d\t0\t0\t-\t-\t-\t-\t%d\n", c.Name, st, len(c.Nodes), c.WaitingPods)
		}
		for i, m := range c.Models {
			waiting := ""
			if i == 0 {
				waiting = fmt.Sprint(c.WaitingPods)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Name, st, m.Model, m.Nodes, m.GPUs, m.HealthyGPUs,
				ratio(m.Slots), gibRatio(m.MemoryMiB), ratio(m.Cores), gib(m.LargestFreeMiB), waiting)
		}
		if wide {
			writeGPURows(tw, c)
		}
	}
	for _, m := range f.Totals {
		fmt.Fprintf(tw, "TOTAL\t\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n", m.Model, m.Nodes, m.GPUs, m.HealthyGPUs,
			ratio(m.Slots), gibRatio(m.MemoryMiB), ratio(m.Cores), gib(m.LargestFreeMiB))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeClusterNotes(w, f.Clusters)
}

// writeGPURows adds, under a cluster, a row per GPU: node/index in the
// model column's place, then the GPU's own figures and who holds it.
func writeGPURows(tw io.Writer, c fleet.Cluster) {
	for _, n := range c.Nodes {
		for _, g := range n.GPUs {
			health := "healthy"
			if !g.Healthy {
				health = "UNHEALTHY"
			}
			fmt.Fprintf(tw, "  %s/%d\t%s\t%s\t\t\t\t%d/%d\t%s/%s\t%d/%d\t\t%s\n", n.Name, g.Index, health, g.Model,
				g.Free.Slots, g.Capacity.Slots, gib(g.Free.MemoryMiB), gib(g.Capacity.MemoryMiB),
				g.Free.Cores, g.Capacity.Cores, holders(g.Holders))
		}
	}
}

func holders(hs []fleet.Holder) string {
	if len(hs) == 0 {
		return ""
	}
	parts := make([]string, 0, len(hs))
	for _, h := range hs {
		parts = append(parts, fmt.Sprintf("%s/%s (%s GiB)", h.Namespace, h.Pod, gib(h.MemoryMiB)))
	}
	return strings.Join(parts, ", ")
}

// writeClusterNotes says, under the table, why a cluster has no data or
// what could not be read in it.
func writeClusterNotes(w io.Writer, clusters []fleet.Cluster) error {
	for _, c := range clusters {
		var err error
		switch {
		case !c.Reachable:
			_, err = fmt.Fprintf(w, "%s: unreachable: %s\n", c.Name, c.Error)
		case !c.Tessera:
			_, err = fmt.Fprintf(w, "%s: no node publishes a Tessera GPU inventory (is the Tessera node agent installed?)\n", c.Name)
		}
		if err != nil {
			return err
		}
		for _, p := range c.Problems {
			if _, err := fmt.Fprintf(w, "%s: not counted: %s\n", c.Name, p); err != nil {
				return err
			}
		}
	}
	return nil
}
