package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/fleet"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
	"github.com/tessera-gpu/tessera/test/e2e/env"
	"github.com/tessera-gpu/tessera/test/promtest"
)

// fleetScrapeInterval is short so that the test waits seconds, not minutes.
const fleetScrapeInterval = "1s"

// fleetAgreeTimeout bounds how long Prometheus may take to show what the
// CLI reads: a scrape or two, and the estimators' caches catching up.
const fleetAgreeTimeout = time.Minute

// TestFleetMetricsInPrometheus: a real Prometheus, configured as
// docs/operations.md recommends (one scrape job for the member estimators,
// one target per member with its cluster as a target label), scrapes the
// two members of the headline environment; its fleet-wide sums per GPU
// model, and each cluster's own series, equal what `tessera fleet -o json`
// reads through Karmada's cluster proxy.
func TestFleetMetricsInPrometheus(t *testing.T) {
	skipUnlessServers(t)
	promBin := promtest.Ensure(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	cli, err := env.BuildCLI(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The busy member's GPUs are filled (32 GiB free each): free is far
	// from total, and the largest free block far below the free memory.
	e := startHeadline(ctx, t, env.EstimatorTessera)
	// A pod that can never be placed (more memory than any GPU has) waits.
	waiting := env.GPUPod(env.HeadlineNamespace, "too-big", "too-big", env.GPURequest{GPUs: 1, MemoryMiB: 100 * 1024}, e.Config().Resources)
	if _, err := e.Member(env.IdleMember).Client().CoreV1().Pods(env.HeadlineNamespace).Create(ctx, waiting, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\nscrape_configs:\n", fleetScrapeInterval, fleetScrapeInterval)
	fmt.Fprintf(&cfg, "  - job_name: tessera-estimator\n    honor_labels: true\n    static_configs:\n")
	members := []string{env.BusyMember, env.IdleMember}
	for _, name := range members {
		addr := e.Member(name).MetricsAddress()
		if addr == "" {
			t.Fatalf("%s's estimator serves no metrics", name)
		}
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels:\n          cluster: %q\n", addr, name)
	}
	api := promtest.Start(ctx, t, promBin, cfg.String())
	for _, tg := range promtest.WaitForTargetsUp(ctx, t, api, len(members)) {
		t.Logf("Prometheus target %s (cluster %s) is %s", tg.ScrapeURL, tg.Labels["cluster"], tg.Health)
	}

	var last string
	err = env.Eventually(ctx, fleetAgreeTimeout, "Prometheus's fleet sums to equal `tessera fleet -o json`", func(ctx context.Context) (bool, string, error) {
		f, err := readFleet(ctx, e, cli)
		if err != nil {
			return false, "", err // the CLI must work: a failure is the finding
		}
		diffs, err := compareFleet(ctx, api, f)
		if err != nil {
			return false, err.Error(), nil
		}
		last = strings.Join(diffs, "\n")
		return !slices.ContainsFunc(diffs, isMismatch), last, nil
	})
	t.Logf("Prometheus vs `tessera fleet -o json`:\n%s", last)
	if err != nil {
		t.Fatal(err)
	}
}

// readFleet runs `tessera fleet -o json` and checks that the state is the
// one the test set up, so that the comparison is not between two zeros.
func readFleet(ctx context.Context, e *env.Env, cli string) (fleet.Fleet, error) {
	out, err := e.RunCLI(ctx, cli, "fleet", "-o", "json")
	if err != nil {
		return fleet.Fleet{}, err
	}
	var f fleet.Fleet
	if err := json.Unmarshal(out, &f); err != nil {
		return fleet.Fleet{}, fmt.Errorf("decode `tessera fleet -o json`: %w\n%s", err, out)
	}
	if len(f.Clusters) != 2 || len(f.Totals) != 2 {
		return f, fmt.Errorf("`tessera fleet` shows %d clusters and %d models, want 2 and 2:\n%s", len(f.Clusters), len(f.Totals), out)
	}
	for _, c := range f.Clusters {
		if !c.Reachable {
			return f, fmt.Errorf("`tessera fleet` cannot read %s: %s", c.Name, c.Error)
		}
	}
	return f, nil
}

// gauge is one figure of a model summary, the series that carries it and
// the same figure in the summary, in the series' unit.
type gauge struct {
	metric, aggregate string
	value             func(gpustate.ModelSummary) float64
}

const mib = 1 << 20

var fleetGauges = []gauge{
	{"tessera_cluster_gpus", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.GPUs) }},
	{"tessera_cluster_gpus_healthy", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.HealthyGPUs) }},
	{"tessera_cluster_nodes", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.Nodes) }},
	{"tessera_cluster_gpu_slots_free", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.Slots.Free) }},
	{"tessera_cluster_gpu_slots_capacity", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.Slots.Total) }},
	{"tessera_cluster_gpu_memory_free_bytes", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.MemoryMiB.Free) * mib }},
	{"tessera_cluster_gpu_memory_capacity_bytes", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.MemoryMiB.Total) * mib }},
	{"tessera_cluster_gpu_cores_free_ratio", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.Cores.Free) / 100 }},
	{"tessera_cluster_gpu_cores_capacity_ratio", "sum", func(m gpustate.ModelSummary) float64 { return float64(m.Cores.Total) / 100 }},
	{"tessera_cluster_gpu_memory_largest_free_bytes", "max", func(m gpustate.ModelSummary) float64 { return float64(m.LargestFreeMiB) * mib }},
}

// compareFleet asks Prometheus for the fleet-wide aggregate of every
// cluster gauge by model, each cluster's own series, and the waiting pods,
// and returns one line per figure: "ok" or "MISMATCH".
func compareFleet(ctx context.Context, api string, f fleet.Fleet) ([]string, error) {
	var lines []string
	for _, g := range fleetGauges {
		byModel, err := queryBy(ctx, api, fmt.Sprintf("%s by (modelName) (%s)", g.aggregate, g.metric), "modelName")
		if err != nil {
			return nil, err
		}
		for _, m := range f.Totals {
			lines = append(lines, compareLine(fmt.Sprintf("fleet %s %s(%s)", m.Model, g.aggregate, g.metric), byModel[m.Model], g.value(m)))
		}
		if len(byModel) != len(f.Totals) {
			lines = append(lines, fmt.Sprintf("MISMATCH %s: Prometheus has %d models, the CLI %d", g.metric, len(byModel), len(f.Totals)))
		}
		perCluster, err := queryBy(ctx, api, g.metric, "cluster", "modelName")
		if err != nil {
			return nil, err
		}
		for _, c := range f.Clusters {
			for _, m := range c.Models {
				lines = append(lines, compareLine(fmt.Sprintf("%s %s %s", c.Name, m.Model, g.metric), perCluster[c.Name+"/"+m.Model], g.value(m)))
			}
		}
	}
	waiting, err := queryBy(ctx, api, "sum(tessera_cluster_pods_waiting)")
	if err != nil {
		return nil, err
	}
	cliWaiting := 0
	for _, c := range f.Clusters {
		cliWaiting += c.WaitingPods
	}
	lines = append(lines, compareLine("fleet sum(tessera_cluster_pods_waiting)", waiting[""], float64(cliWaiting)))
	if cliWaiting != 1 {
		lines = append(lines, fmt.Sprintf("MISMATCH the CLI counts %d waiting pods, the test made 1", cliWaiting))
	}
	return lines, nil
}

func isMismatch(line string) bool { return strings.HasPrefix(line, "MISMATCH") }

// compareLine compares a Prometheus value (nil: no series) with the CLI's.
func compareLine(what string, prom *float64, cli float64) string {
	switch {
	case prom == nil:
		return fmt.Sprintf("MISMATCH %s: Prometheus has no series, CLI %g", what, cli)
	case math.Abs(*prom-cli) > 1e-9*math.Max(1, math.Abs(cli)):
		return fmt.Sprintf("MISMATCH %s: Prometheus %g, CLI %g", what, *prom, cli)
	}
	return fmt.Sprintf("ok %s: Prometheus %g = CLI %g", what, *prom, cli)
}

// queryBy runs a query and indexes its series by the values of labels,
// joined by "/".
func queryBy(ctx context.Context, api, query string, labels ...string) (map[string]*float64, error) {
	samples, err := promtest.Query(ctx, api, query)
	if err != nil {
		return nil, err
	}
	out := map[string]*float64{}
	for _, s := range samples {
		key := make([]string, 0, len(labels))
		for _, l := range labels {
			key = append(key, s.Metric[l])
		}
		v, err := strconv.ParseFloat(s.Value, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %q: %w", query, s.Value, err)
		}
		out[strings.Join(key, "/")] = &v
	}
	return out, nil
}
