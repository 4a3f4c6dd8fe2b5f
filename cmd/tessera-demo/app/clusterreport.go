package app

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// scenarioReport is what one run of the headline scenario showed.
type scenarioReport struct {
	Mode     env.EstimatorMode
	Workload env.Workload
	Clusters []clusterReport
	// Binding describes the ResourceBinding's conditions.
	Binding string
}

// clusterReport is one member as the report shows it.
type clusterReport struct {
	Name string
	// Before and After are the member's GPUs before the workload and once
	// it has settled, in the same order.
	Before, After []env.GPUView
	// Estimate is what both estimators said before the workload.
	Estimate env.Estimate
	// Placed is how many replicas Karmada gave the member.
	Placed   int32
	Replicas []replicaReport
}

// replicaReport is one replica and what the device plugin handed it.
type replicaReport struct {
	env.Replica
	// Served says the kubelet admitted it through the device plugin;
	// VisibleDevices and MemoryLimits are, per GPU container, the GPUs and
	// the first GPU's memory limit (MiB) in the plugin's answer.
	Served                       bool
	VisibleDevices, MemoryLimits []string
	// Rejected is the kubelet's admission failure, if any.
	Rejected string
}

// modeTitle says in words which estimates Karmada went by.
func modeTitle(m env.EstimatorMode) string {
	if m == env.EstimatorStock {
		return "Karmada as it ships (--enable-scheduler-estimator=false): its general estimate only"
	}
	return "Karmada with Tessera's estimator: the smaller of its general estimate and Tessera's"
}

func (s scenarioReport) write(w io.Writer) {
	r := s.Workload.Request
	fmt.Fprintf(w, "\n=== %s\n", modeTitle(s.Mode))
	fmt.Fprintf(w, "Deployment %s/%s: %d replicas, each %d vGPU with %d MiB (%d GiB), divided by available replicas.\n",
		s.Workload.Namespace, s.Workload.Name, s.Workload.Replicas, r.GPUs, r.MemoryMiB, r.MemoryMiB/1024)
	for _, c := range s.Clusters {
		c.write(w, s.Mode)
	}
	fmt.Fprintf(w, "\nKarmada's decision: %s  (ResourceBinding: %s)\n", s.placementLine(), s.Binding)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range s.Clusters {
		for _, rep := range c.Replicas {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", c.Name, rep.Name, stateWord(rep.Replica), rep.detail())
		}
	}
	_ = tw.Flush()
}

func (s scenarioReport) placementLine() string {
	parts := make([]string, 0, len(s.Clusters))
	for _, c := range s.Clusters {
		parts = append(parts, fmt.Sprintf("%s %d", c.Name, c.Placed))
	}
	return strings.Join(parts, ", ")
}

func (c clusterReport) write(w io.Writer, mode env.EstimatorMode) {
	nodes := map[string]bool{}
	for _, g := range c.Before {
		nodes[g.Node] = true
	}
	fmt.Fprintf(w, "\n%s: %d GPUs on %d node(s)\n", c.Name, len(c.Before), len(nodes))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tGPU\tMODEL\tMEMORY MiB\tFREE BEFORE\tFREE AFTER\t")
	for i, g := range c.Before {
		after := "-"
		if i < len(c.After) && c.After[i].UUID == g.UUID {
			after = fmt.Sprint(c.After[i].Free().MemoryMiB)
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%d\t%s\t\n", g.Node, g.Index, g.Model, g.MemoryMiB, g.Free().MemoryMiB, after)
	}
	_ = tw.Flush()
	tessera := fmt.Sprint(c.Estimate.Tessera)
	if c.Estimate.TesseraErr != nil {
		tessera = "no answer"
	}
	note := ""
	if mode == env.EstimatorStock {
		note = " (Karmada does not ask Tessera here)"
	}
	fmt.Fprintf(w, "  Replicas that fit: Karmada's general estimate %d, Tessera's estimate %s%s -> Karmada goes by %d\n",
		c.Estimate.Stock, tessera, note, c.Estimate.Used)
}

// stateWord is Running, Pending or the pod's phase, for a table column.
func stateWord(r env.Replica) string {
	switch {
	case r.Phase == corev1.PodRunning && r.Ready:
		return "Running"
	case r.Phase == "":
		return "Unknown"
	default:
		return string(r.Phase)
	}
}

// detail says where a running replica is and what it got, or why a
// replica does not run.
func (r replicaReport) detail() string {
	switch {
	case r.Rejected != "":
		return "rejected by the kubelet: " + r.Rejected
	case r.Phase != corev1.PodRunning && r.Why != "":
		return r.Why
	case r.Phase != corev1.PodRunning:
		return "waiting to be scheduled"
	}
	var chosen, uuids []string
	if r.Assignment != nil {
		for _, c := range r.Assignment.Containers {
			var ids []string
			for _, d := range c.Devices {
				chosen = append(chosen, fmt.Sprintf("%s (%d MiB)", d.UUID, d.MemoryMiB))
				ids = append(ids, d.UUID)
			}
			uuids = append(uuids, strings.Join(ids, ","))
		}
	}
	s := fmt.Sprintf("on %s, extender chose %s", r.Node, strings.Join(chosen, ", "))
	if !r.Served {
		return s + "; not admitted through the device plugin"
	}
	s += fmt.Sprintf("; device plugin gave %s, memory limit %s MiB", strings.Join(r.VisibleDevices, " "), strings.Join(r.MemoryLimits, " "))
	if !slices.Equal(uuids, r.VisibleDevices) {
		s += "  <-- NOT the GPUs the extender chose (see docs/e2e.md, known problems)"
	}
	return s
}

// writeVerdict sums up both runs in a few lines.
func writeVerdict(w io.Writer, runs []scenarioReport) {
	fmt.Fprintln(w, "\n=== In short")
	for _, s := range runs {
		running, pending := 0, 0
		var where []string
		for _, c := range s.Clusters {
			for _, r := range c.Replicas {
				if stateWord(r.Replica) == "Running" {
					running++
				} else {
					pending++
				}
			}
			if c.Placed > 0 {
				where = append(where, fmt.Sprintf("%d in %s", c.Placed, c.Name))
			}
		}
		who := "With Tessera's estimator"
		if s.Mode == env.EstimatorStock {
			who = "With Karmada's stock estimate"
		}
		fmt.Fprintf(w, "  %s: %s; %d running, %d pending.\n", who, strings.Join(where, ", "), running, pending)
	}
}
