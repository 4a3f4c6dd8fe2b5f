package app

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tessera-gpu/tessera/cmd/tessera/app/options"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

func newPodsCommand(global *options.Global, stdout io.Writer) *cobra.Command {
	var output, namespace string
	cmd := &cobra.Command{
		Use:   "pods",
		Short: "The fleet's vGPU pods: cluster, node, GPUs, memory and core limits, observed use",
		Example: `  tessera pods
  tessera pods --cluster member-a -n team-a -o json`,
		Args: noArgs,
		PreRunE: func(*cobra.Command, []string) error {
			return options.ValidateOutput(output, false)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := readFleet(cmd.Context(), global)
			if err != nil {
				return err
			}
			pods := fleetPods(st.Fleet, namespace)
			if ok, err := printData(stdout, output, pods); ok {
				return err
			}
			return writePodsTable(stdout, pods, st.Fleet.Clusters)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "Output format: json or yaml (default: a table).")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", "Only pods of this namespace.")
	return cmd
}

// fleetPods lists every cluster's vGPU pods, optionally of one namespace.
func fleetPods(f fleet.Fleet, namespace string) []fleet.Pod {
	out := []fleet.Pod{}
	for _, c := range f.Clusters {
		for _, p := range c.Pods {
			if namespace == "" || p.Namespace == namespace {
				out = append(out, p)
			}
		}
	}
	return out
}

func writePodsTable(w io.Writer, pods []fleet.Pod, clusters []fleet.Cluster) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tNAMESPACE\tPOD\tNODE\tSTATUS\tCONTAINER\tVGPUS\tGPUS\tMEMORY GiB\tCORES %\tUSED GiB")
	for _, p := range pods {
		for _, c := range p.Containers {
			used := "-"
			if c.UsedMemoryMiB != nil {
				used = gib(*c.UsedMemoryMiB)
			}
			mem := gib(c.MemoryMiB)
			switch {
			case c.MemoryPercent > 0:
				mem = fmt.Sprintf("%d%% of each", c.MemoryPercent)
			case c.MemoryMiB == 0:
				mem = "whole"
			}
			cores := "-"
			if c.Cores > 0 {
				cores = fmt.Sprint(c.Cores)
			}
			gpus := strings.Join(c.GPUs, ",")
			if gpus == "" {
				gpus = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", p.Cluster, p.Namespace, p.Name, dash(p.Node),
				podStatus(p), c.Name, c.VGPUs, gpus, mem, cores, used)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range pods {
		if p.Waiting && p.Reason != "" {
			if _, err := fmt.Fprintf(w, "%s: %s/%s waits: %s\n", p.Cluster, p.Namespace, p.Name, p.Reason); err != nil {
				return err
			}
		}
	}
	for _, c := range clusters {
		if !c.Reachable {
			if _, err := fmt.Fprintf(w, "%s: unreachable: %s\n", c.Name, c.Error); err != nil {
				return err
			}
		}
	}
	return nil
}

func podStatus(p fleet.Pod) string {
	if p.Waiting {
		return "Waiting"
	}
	return dash(p.Phase)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
