package fleet

import (
	"fmt"
	"strconv"
	"strings"
)

// The fleet's figures in words, as `tessera` prints them and the page
// shows them (its script formats the same way; test/browser checks it).

// GiB formats MiB as GiB: whole when whole, else with one decimal.
func GiB(mib int64) string {
	if mib%1024 == 0 {
		return strconv.FormatInt(mib/1024, 10)
	}
	return strconv.FormatFloat(float64(mib)/1024, 'f', 1, 64)
}

// Ratio is "free/total" of a count.
func Ratio(c Capacity) string { return fmt.Sprintf("%d/%d", c.Free, c.Total) }

// GiBRatio is "free/total" of an amount of MiB, in GiB.
func GiBRatio(c Capacity) string { return GiB(c.Free) + "/" + GiB(c.Total) }

// String says on which node and GPUs a replica would go: "node: GPU 0
// (40 GiB), GPU 1 (40 GiB)", or "-" when none.
func (p *FirstPlacement) String() string {
	if p == nil {
		return "-"
	}
	var gpus []string
	for _, c := range p.Containers {
		for _, g := range c.GPUs {
			gpus = append(gpus, fmt.Sprintf("GPU %d (%s GiB)", g.Index, GiB(g.MemoryMiB)))
		}
	}
	return p.Node + ": " + strings.Join(gpus, ", ")
}
