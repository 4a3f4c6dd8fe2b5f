//go:build linux

package nodemetrics

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/tessera-gpu/tessera/pkg/region"
)

// RegionPathUnder returns where the device plugin keeps a container's usage
// region under the node's state directory:
// <stateDir>/regions/<podUID>/<container>/usage.region. It must name the same
// file as deviceplugin/regions.go, which keeps its layout unexported.
func RegionPathUnder(stateDir string) func(podUID, container string) string {
	return func(podUID, container string) string {
		return filepath.Join(stateDir, "regions", podUID, container, "usage.region")
	}
}

// RegionFiles is a RegionReader over region files: path names a container's
// file (RegionPathUnder(cfg.Node.StateDir) in the node agent). Each read maps
// the file read-only through pkg/region, takes one snapshot and unmaps it,
// so nothing is held for pods that go away. A file that does not exist
// reads as fs.ErrNotExist and one no process has initialised yet as a zero
// snapshot: both are a container that has not used its GPUs.
func RegionFiles(path func(podUID, container string) string) RegionReader {
	return func(podUID, container string) (RegionSnapshot, error) {
		// Both names come from annotations; neither may climb out of the
		// regions directory.
		if !pathComponent(podUID) || !pathComponent(container) {
			return RegionSnapshot{}, fmt.Errorf("read region: pod UID %q or container name %q cannot name a directory", podUID, container)
		}
		p := path(podUID, container)
		r, err := region.Open(p)
		if err != nil {
			return RegionSnapshot{}, fmt.Errorf("read region of container %s of pod %s: %w", container, podUID, err)
		}
		snap, err := r.Snapshot()
		closeErr := r.Close()
		switch {
		case errors.Is(err, region.ErrNotReady):
			return RegionSnapshot{}, nil
		case err != nil:
			return RegionSnapshot{}, fmt.Errorf("read region of container %s of pod %s: %w", container, podUID, err)
		case closeErr != nil:
			return RegionSnapshot{}, fmt.Errorf("read region of container %s of pod %s: %w", container, podUID, closeErr)
		}
		return FromRegion(snap), nil
	}
}

// FromRegion turns pkg/region's snapshot into the collector's: per device
// the memory used and the launches summed over processes, and the number of
// distinct processes using any device.
func FromRegion(s *region.Snapshot) RegionSnapshot {
	if s == nil {
		return RegionSnapshot{}
	}
	out := RegionSnapshot{Devices: make([]RegionDevice, len(s.Devices))}
	pids := map[int32]bool{}
	for i, d := range s.Devices {
		rd := RegionDevice{UUID: d.UUID, UsedBytes: d.UsedBytes}
		for _, p := range d.Processes {
			rd.KernelLaunches += p.Launches
			pids[p.PID] = true
		}
		out.Devices[i] = rd
	}
	out.Processes = len(pids)
	return out
}

func pathComponent(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}
