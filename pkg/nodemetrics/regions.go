//go:build linux

package nodemetrics

import (
	"errors"
	"fmt"

	"github.com/tessera-gpu/tessera/pkg/region"
)

// RegionFiles is a RegionReader over region files: path names a container's
// file, and in the node agent it is deviceplugin.RegionFile under the node's
// state directory, the one definition of where the plugin puts the file.
// path must refuse a pod UID or container name that could climb out of the
// regions directory (both come from annotations); its error is returned.
// Each read maps the file read-only through pkg/region, takes one snapshot
// and unmaps it, so nothing is held for pods that go away. A file that does
// not exist reads as fs.ErrNotExist and one no process has initialised yet
// as a zero snapshot: both are a container that has not used its GPUs.
func RegionFiles(path func(podUID, container string) (string, error)) RegionReader {
	return func(podUID, container string) (RegionSnapshot, error) {
		p, err := path(podUID, container)
		if err != nil {
			return RegionSnapshot{}, fmt.Errorf("read region of container %q of pod %q: %w", container, podUID, err)
		}
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
// the memory used, and the launches and busy time summed over processes;
// and the number of distinct processes using any device.
func FromRegion(s *region.Snapshot) RegionSnapshot {
	if s == nil {
		return RegionSnapshot{}
	}
	out := RegionSnapshot{Devices: make([]RegionDevice, len(s.Devices))}
	pids := map[int32]bool{}
	for i, d := range s.Devices {
		rd := RegionDevice{UUID: d.UUID, UsedBytes: d.UsedBytes, BusySeconds: d.BusySeconds}
		for _, p := range d.Processes {
			rd.KernelLaunches += p.Launches
			pids[p.PID] = true
		}
		out.Devices[i] = rd
	}
	out.Processes = len(pids)
	return out
}
