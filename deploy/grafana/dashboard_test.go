// Package grafana_test checks the Grafana dashboards against the metrics the
// code really exports, so that a renamed metric breaks a test, not a panel.
package grafana_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/metrics"
)

const repoRoot = "../.."

// metricSources are the files that define every metric a dashboard may
// use: the node agent's, the estimator's (its own and the cluster series)
// and the extender's.
func metricSources() []string {
	return []string{
		"pkg/nodemetrics/collector.go",
		"scheduler-plugin/estimator/metrics/metrics.go",
		"scheduler-plugin/estimator/metrics/cluster.go",
		"scheduler-plugin/extender/metrics.go",
		"deviceplugin/metrics.go",
	}
}

// dashboards are the shipped dashboards and, for each, the metrics it must
// show: what operators look at first on that board.
var dashboards = []struct {
	file string
	must []string
}{
	{"tessera-dashboard.json", []string{
		"tessera_gpu_memory_capacity_bytes", "tessera_gpu_memory_allocated_bytes", "tessera_gpu_healthy",
		"tessera_gpu_cores_allocated_ratio", "tessera_container_memory_used_bytes", "tessera_container_memory_limit_bytes",
		"tessera_container_core_limit_ratio", "tessera_container_gpu_busy_seconds_total",
		"tessera_estimator_free_vgpu_slots",
	}},
	{"tessera-fleet-dashboard.json", []string{
		"tessera_cluster_gpu_memory_free_bytes", "tessera_cluster_gpu_memory_capacity_bytes",
		"tessera_cluster_gpu_memory_largest_free_bytes", "tessera_cluster_gpus", "tessera_cluster_gpus_healthy",
		"tessera_cluster_gpu_slots_free", "tessera_cluster_pods_waiting",
		"tessera_container_memory_used_bytes", "tessera_container_memory_limit_bytes",
	}},
}

var (
	namespaceConst = regexp.MustCompile(`(?m)^const Namespace = "(\w+)"`)
	nameInCode     = regexp.MustCompile(`(?:Name:\s*|desc\(\s*)"(\w+)"`)
)

// knownMetrics greps metric names out of the sources: names given whole
// ("tessera_..."), or relative to the file's Namespace constant. Histograms
// (names ending _seconds) also expose _bucket, _sum and _count series.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, src := range metricSources() {
		data, err := os.ReadFile(filepath.Join(repoRoot, src))
		if err != nil {
			t.Fatal(err)
		}
		prefix := ""
		if m := namespaceConst.FindSubmatch(data); m != nil {
			prefix = string(m[1]) + "_"
		}
		found := 0
		for _, m := range nameInCode.FindAllSubmatch(data, -1) {
			name := string(m[1])
			if !strings.HasPrefix(name, "tessera_") {
				name = prefix + name
			}
			if !strings.HasPrefix(name, "tessera_") {
				continue // a label name or some other "Name"
			}
			known[name] = true
			found++
			if strings.HasSuffix(name, "_seconds") {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					known[name+s] = true
				}
			}
		}
		if found == 0 {
			t.Fatalf("found no metric names in %s: the grep no longer matches how metrics are declared", src)
		}
	}
	return known
}

// TestGrepFindsEveryNodeMetric guards the grep: every metric the node
// collector really describes must be among the names grepped.
func TestGrepFindsEveryNodeMetric(t *testing.T) {
	known := knownMetrics(t)
	c, err := nodemetrics.New(nodemetrics.Options{NodeName: "n", GPUs: noGPUs{}, Pods: noPods{},
		Regions: func(string, string) (nodemetrics.RegionSnapshot, error) { return nodemetrics.RegionSnapshot{}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 64)
	c.Describe(ch)
	close(ch)
	fqName := regexp.MustCompile(`fqName: "(\w+)"`)
	n := 0
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil || !known[m[1]] {
			t.Errorf("collector metric %v is not found by the grep", d)
		}
		n++
	}
	if n == 0 {
		t.Fatal("the collector describes no metric")
	}
}

// TestGrepFindsEveryEstimatorMetric guards the grep for the estimator: every
// family its registry gathers (with a GPU in the state and one request
// observed, so that no family is left out for being empty) is among the
// names grepped.
func TestGrepFindsEveryEstimatorMetric(t *testing.T) {
	known := knownMetrics(t)
	snap := gpucache.NewSnapshot([]*gpucache.NodeGPUs{{Name: "n", Devices: []vgpu.DeviceState{{
		GPU: vgpu.GPU{UUID: "GPU-1", Model: "A100", MemoryMiB: 1024, Slots: 4, Cores: 100, Healthy: true},
	}}}}, time.Now())
	m, err := metrics.New("c", fixedState{snap}, fixedAge{}, fixedWaiting{})
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveRequest("MaxAvailableReplicas", codes.OK, time.Millisecond)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	clusterSeries := 0
	for _, f := range families {
		if !known[f.GetName()] {
			t.Errorf("estimator metric %s is not found by the grep", f.GetName())
		}
		if strings.HasPrefix(f.GetName(), "tessera_cluster_") {
			clusterSeries++
		}
	}
	if clusterSeries == 0 {
		t.Fatal("the estimator gathers no tessera_cluster_ metric")
	}
}

type fixedState struct{ s *gpucache.Snapshot }

func (f fixedState) Snapshot() *gpucache.Snapshot { return f.s }

type fixedAge struct{}

func (fixedAge) Age() time.Duration { return 0 }

type fixedWaiting struct{}

func (fixedWaiting) Count() int { return 0 }

type noGPUs struct{}

func (noGPUs) GPUs() []vgpu.GPU { return nil }

type noPods struct{}

func (noPods) AssignedPods() ([]nodemetrics.AssignedPod, []nodemetrics.SkippedPod, error) {
	return nil, nil, nil
}

// dashboard is the part of Grafana's model the test reads.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"` // a collapsed row's panels
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T, file string) dashboard {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", file, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Fatalf("%s has no title or uid", file)
	}
	return d
}

// TestDashboardsAreDistinct: Grafana identifies a dashboard by its uid;
// two files with one uid would overwrite each other on import.
func TestDashboardsAreDistinct(t *testing.T) {
	uids, titles := map[string]string{}, map[string]string{}
	for _, db := range dashboards {
		d := loadDashboard(t, db.file)
		if other, ok := uids[d.UID]; ok {
			t.Errorf("%s and %s share the uid %q", db.file, other, d.UID)
		}
		if other, ok := titles[d.Title]; ok {
			t.Errorf("%s and %s share the title %q", db.file, other, d.Title)
		}
		uids[d.UID], titles[d.Title] = db.file, db.file
	}
}

// expressions returns every PromQL expression of the dashboard, named by
// where it is: panel targets and query variables.
func expressions(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d is used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for i, tg := range p.Targets {
				exprs[fmt.Sprintf("panel %q target %d", p.Title, i)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
		}
		exprs["variable "+v.Name] = q.Query
	}
	return exprs
}

var (
	quoted     = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers   = regexp.MustCompile(`\{[^{}]*\}`)
	ranges     = regexp.MustCompile(`\[[^\[\]]*\]`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	variables  = regexp.MustCompile(`\$\{?\w+\}?`)
	identifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	keywords   = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
)

// metricNames lists the metric names an expression selects: identifiers
// left once strings, label matchers, ranges, grouping clauses and Grafana
// variables are removed, that are neither functions nor keywords.
func metricNames(expr string) []string {
	s := quoted.ReplaceAllString(expr, `""`)
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	s = variables.ReplaceAllString(s, " ")
	var names []string
	for _, m := range identifier.FindAllString(s, -1) {
		if strings.HasSuffix(m, "(") || slices.Contains(keywords, m) {
			continue // a function call or an operator
		}
		names = append(names, m)
	}
	return names
}

func TestMetricNamesOfPromQL(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`sum by (cluster) (tessera_gpu_healthy{cluster=~"$cluster"})`, "tessera_gpu_healthy"},
		{`histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{a="b{c}"}[$__rate_interval])))`, "x_seconds_bucket"},
		{`a / on (pod) group_left (UUID) b > 0`, "a b"},
		{`label_values(tessera_container_memory_limit_bytes{Hostname=~"$node"}, namespace)`, "tessera_container_memory_limit_bytes namespace"},
	}
	for _, tt := range tests {
		if got := strings.Join(metricNames(tt.expr), " "); got != tt.want {
			t.Errorf("metricNames(%s) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// TestDashboardUsesOnlyExportedMetrics: every expression of every
// dashboard names only metrics the code exports (label_values' label
// argument aside), and each dashboard shows what it must.
func TestDashboardUsesOnlyExportedMetrics(t *testing.T) {
	known := knownMetrics(t)
	for _, db := range dashboards {
		t.Run(db.file, func(t *testing.T) {
			d := loadDashboard(t, db.file)
			used := map[string]bool{}
			for where, expr := range expressions(t, d) {
				names := metricNames(expr)
				if strings.HasPrefix(strings.TrimSpace(expr), "label_values(") && len(names) == 2 {
					names = names[:1] // the second argument is a label name
				}
				if len(names) == 0 {
					t.Errorf("%s: %q selects no metric", where, expr)
				}
				for _, n := range names {
					if !known[n] {
						t.Errorf("%s: %q uses %s, which no Tessera component exports", where, expr, n)
					}
					used[n] = true
				}
			}
			for _, must := range db.must {
				if !used[must] {
					t.Errorf("the dashboard shows no %s", must)
				}
			}
		})
	}
}

// TestOperationsGuideListsEveryMetric keeps the metrics table of
// docs/operations.md complete.
func TestOperationsGuideListsEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range knownMetrics(t) {
		if strings.HasSuffix(name, "_bucket") || strings.HasSuffix(name, "_sum") || strings.HasSuffix(name, "_count") {
			continue
		}
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/operations.md has no table row for %s", name)
		}
	}
}
