package app

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/cmd/tessera/app/options"
	"github.com/tessera-gpu/tessera/pkg/fleet"
)

// printData writes v as JSON or YAML; ok is false for a table format.
func printData(w io.Writer, output string, v any) (ok bool, err error) {
	switch output {
	case options.OutputJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return true, enc.Encode(v)
	case options.OutputYAML:
		data, err := yaml.Marshal(v)
		if err != nil {
			return true, fmt.Errorf("encode YAML: %w", err)
		}
		_, err = w.Write(data)
		return true, err
	}
	return false, nil
}

// Short names for the fleet's formatters, as the tables use them often.
var (
	gib      = fleet.GiB
	ratio    = fleet.Ratio
	gibRatio = fleet.GiBRatio
)

// status is a cluster's state in one word, with the data's age when the
// member did not answer.
func status(c fleet.Cluster, now time.Time) string {
	switch {
	case !c.Reachable && c.ReadAt.IsZero():
		return "Unreachable"
	case !c.Reachable:
		return fmt.Sprintf("Unreachable (data %s old)", now.Sub(c.ReadAt).Round(time.Second))
	case !c.Tessera:
		return "NoTessera"
	case !c.Ready:
		return "NotReady"
	}
	return "Ready"
}
