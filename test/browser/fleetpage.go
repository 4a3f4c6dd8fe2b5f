package browser

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// This file knows the fleet page of `tessera dashboard` (pkg/fleetweb):
// what its tables must show for a fleet, and how to read its tiles and use
// its form. The numbers are formatted as `tessera fleet` prints them.

// GiB formats MiB as the page and the CLI do.
var GiB = fleet.GiB

// FleetRows is what the fleet table's body must show for f, a row per
// cluster and GPU model, each cell's value as Row.Values reads it: cluster,
// status (reachable or unreachable), model, nodes, GPUs healthy/total,
// slots, memory GiB and cores free/total, largest free GiB, pods waiting.
func FleetRows(f fleet.Fleet) [][]string {
	var out [][]string
	for _, c := range f.Clusters {
		status := "unreachable"
		if c.Reachable {
			status = "reachable"
		}
		if len(c.Models) == 0 {
			out = append(out, []string{c.Name, status, "-", strconv.Itoa(len(c.Nodes)), "0/0", "-", "-", "-", "-", strconv.Itoa(c.WaitingPods)})
		}
		for i, m := range c.Models {
			waiting := ""
			if i == 0 {
				waiting = strconv.Itoa(c.WaitingPods)
			}
			out = append(out, append([]string{c.Name, status}, modelRow(m, waiting)...))
		}
	}
	return out
}

// TotalRows is what the fleet table's foot must show: the fleet's totals
// per model, and the pods waiting in reachable clusters on the first row.
func TotalRows(f fleet.Fleet) [][]string {
	waiting := 0
	for _, c := range f.Clusters {
		if c.Reachable {
			waiting += c.WaitingPods
		}
	}
	var out [][]string
	for i, m := range f.Totals {
		w := ""
		if i == 0 {
			w = strconv.Itoa(waiting)
		}
		out = append(out, append([]string{"Fleet", "reachable clusters"}, modelRow(m, w)...))
	}
	return out
}

func modelRow(m fleet.ModelSummary, waiting string) []string {
	return []string{m.Model, strconv.Itoa(m.Nodes), fmt.Sprintf("%d/%d", m.HealthyGPUs, m.GPUs), fleet.Ratio(m.Slots),
		fleet.GiBRatio(m.MemoryMiB), fleet.Ratio(m.Cores), GiB(m.LargestFreeMiB), waiting}
}

// FitRows is what the "what fits" table must show for res: cluster,
// Tessera's exact count, Karmada's stock estimate, the two combined, and
// the node and GPUs of the first replica ("-" where unreachable or none).
func FitRows(res *fleet.FitResult) [][]string {
	var out [][]string
	for _, a := range res.Clusters {
		tessera, scheduler := strconv.Itoa(int(a.Tessera)), strconv.Itoa(int(a.Scheduler))
		if !a.Reachable {
			tessera, scheduler = "-", "-"
		}
		out = append(out, []string{a.Cluster, tessera, strconv.Itoa(int(a.Karmada)), scheduler, a.First.String()})
	}
	return out
}

// Tile is one GPU tile of the mosaic, as its data attributes say.
type Tile struct {
	Cluster   string `json:"cluster"`
	UUID      string `json:"uuid"`
	FreeMiB   int64  `json:"freeMiB"`
	FreeSlots int    `json:"freeSlots"`
	Holders   int    `json:"holders"`
	Healthy   bool   `json:"healthy"`
	// Label is the tile's accessible name, which names the GPU's model.
	Label string `json:"label"`
}

// Tiles reads every GPU tile of the mosaic, in page order.
func (b *Browser) Tiles() ([]Tile, error) {
	return Eval[[]Tile](b, `Array.from(document.querySelectorAll('#mosaic-clusters .gpu')).map((t) => ({
		cluster: t.closest('[data-cluster]').dataset.cluster, uuid: t.dataset.uuid,
		freeMiB: Number(t.dataset.freeMib), freeSlots: Number(t.dataset.freeSlots),
		holders: Number(t.dataset.holders), healthy: t.dataset.healthy === 'true',
		label: t.getAttribute('aria-label') }))`)
}

// WantTiles is the tiles the mosaic must show for f, in page order.
func WantTiles(f fleet.Fleet) []Tile {
	var out []Tile
	for _, c := range f.Clusters {
		for _, n := range c.Nodes {
			for _, g := range n.GPUs {
				out = append(out, Tile{Cluster: c.Name, UUID: g.UUID, FreeMiB: g.Free.MemoryMiB, FreeSlots: g.Free.Slots, Holders: len(g.Holders), Healthy: g.Healthy})
			}
		}
	}
	return out
}

// CompareTiles lists how the tiles read differ from the fleet's GPUs
// (labels aside); empty when they agree.
func CompareTiles(got []Tile, f fleet.Fleet) []string {
	want := WantTiles(f)
	var diffs []string
	if len(got) != len(want) {
		diffs = append(diffs, fmt.Sprintf("the mosaic has %d tiles, the fleet %d GPUs", len(got), len(want)))
	}
	for i := range min(len(got), len(want)) {
		g := got[i]
		g.Label = ""
		if g != want[i] {
			diffs = append(diffs, fmt.Sprintf("tile %d: got %+v, want %+v", i, g, want[i]))
		}
	}
	return diffs
}

// WaitFleet waits until the page has drawn the fleet read at readAt (the
// page marks body[data-read-at] after drawing).
func (b *Browser) WaitFleet(readAt time.Time, timeout time.Duration) error {
	// The page copies readAt from the JSON, so compare with its JSON form
	// (a JSON string is a JavaScript string literal).
	js, err := readAt.MarshalJSON()
	if err != nil {
		return err
	}
	return b.WaitTrue("document.body.dataset.readAt === "+string(js), timeout)
}

// FitShape fills the "what fits" form with a shape and replicas, submits
// it, and returns the rows of the answer's table.
func (b *Browser) FitShape(s fleet.Shape, replicas int32, timeout time.Duration) ([]Row, error) {
	seq, err := Eval[string](b, `document.getElementById('fit-result').dataset.seq || '0'`)
	if err != nil {
		return nil, err
	}
	num := func(n int) string {
		if n == 0 {
			return ""
		}
		return strconv.Itoa(n)
	}
	fields := map[string]string{"vgpus": num(s.VGPUs), "memory": s.Memory, "cores": num(s.Cores), "replicas": num(int(replicas))}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := chromedp.Do(b.ctx, chromedp.SetValue(chromedp.CSS(`#fit-form [name="`+name+`"]`), fields[name])); err != nil {
			return nil, fmt.Errorf("fill %s: %w", name, err)
		}
	}
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`#fit-form button[type="submit"]`))); err != nil {
		return nil, fmt.Errorf("submit the fit form: %w", err)
	}
	if err := b.WaitTrue(fmt.Sprintf(`(document.getElementById('fit-result').dataset.seq || '0') !== %q`, seq), timeout); err != nil {
		return nil, err
	}
	if msg, err := Eval[string](b, `document.getElementById('fit-error').hidden ? '' : document.getElementById('fit-error').textContent`); err != nil {
		return nil, err
	} else if msg != "" {
		return nil, fmt.Errorf("the page answered the fit form with an error: %s", msg)
	}
	return b.Rows("#fit-table tbody tr")
}
