package deviceplugin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The allocation directory is what Allocate can set up from the slot IDs
// alone, before anyone knows whose container it is:
//
//	<stateDir>/allocations/           root 0700 (privateDirMode)
//	    <key>/                        root 0700, never mounted
//	        record                    0644, host only: the allocation's ID and slots
//	        owner                     0644, host only: whose it is, once resolved
//	        limits/                   root 0755, mounted read-only at /var/run/tessera-limits
//	            limits                0644, the hookenv limits file, once resolved
//	        region/                   root 0755, mounted read-write at /var/run/tessera
//	            usage.region          root 0666
//
// docs/operations.md ("Region files and their permissions") says why each
// mode is what it is; TestContainersCannotReachOtherRegions proves it.
//
// key is a hash of the container request's sorted slot IDs: the kubelet
// never gives one slot to two containers at once, so one key names one live
// allocation. A later allocation of the same slots (a new pod, or the
// kubelet allocating again for a restarted container) starts the directory
// afresh under a new ID, and the limits file carries the ID it was written
// for, so a file written for an earlier owner is never read as this one's.
const (
	allocationsDirName = "allocations"
	allocRecordName    = "record"
	allocOwnerName     = "owner"
	allocLimitsDirName = "limits"
	allocRegionDirName = "region"
	limitsFileName     = "limits"
	// allocFileMode: the limits file is read by any user in the container.
	allocFileMode = 0o644
)

// allocationKey names the allocation of a container request's slots.
func allocationKey(sortedSlots []string) string {
	sum := sha256.Sum256([]byte(strings.Join(sortedSlots, "\n")))
	return hex.EncodeToString(sum[:16])
}

// newAllocationID is a fresh random ID for one Allocate of one container.
func newAllocationID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random allocation ID: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// allocRecord is written at Allocate, so that a restarted agent knows the
// allocations it still has to resolve.
type allocRecord struct {
	ID string `json:"id"`
	// Slots are sorted; GPUs are in the container's ordinal order.
	Slots   []string  `json:"slots"`
	GPUs    []string  `json:"gpus"`
	Created time.Time `json:"created"`
}

// ownerRecord says whose an allocation turned out to be.
type ownerRecord struct {
	// ID is the allocation the resolution was for.
	ID        string `json:"id"`
	PodUID    string `json:"podUID"`
	Namespace string `json:"namespace"`
	Pod       string `json:"pod"`
	Container string `json:"container"`
	// Refused is set when the container was refused its GPUs.
	Refused string `json:"refused,omitempty"`
}

// allocStore is the allocations part of the state directory.
type allocStore struct {
	stateDir string
}

func (s allocStore) root() string              { return filepath.Join(s.stateDir, allocationsDirName) }
func (s allocStore) dir(key string) string     { return filepath.Join(s.root(), key) }
func (s allocStore) limitsDir(k string) string { return filepath.Join(s.dir(k), allocLimitsDirName) }
func (s allocStore) regionDir(k string) string { return filepath.Join(s.dir(k), allocRegionDirName) }

// prepare starts the allocation directory of key afresh for rec: whatever
// an earlier allocation of the same slots left (its limits, its owner, its
// region) is removed, and the new record is written last, so that a crash
// half-way leaves at worst a directory that the next Allocate redoes.
func (s allocStore) prepare(key string, rec allocRecord) error {
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{s.root(), privateDirMode}, {s.dir(key), privateDirMode}, {s.limitsDir(key), regionDirMode}, {s.regionDir(key), regionDirMode}} {
		if err := ensureRootDir(d.path, d.mode); err != nil {
			return fmt.Errorf("prepare allocation %s: %w", key, err)
		}
	}
	for _, f := range []string{filepath.Join(s.limitsDir(key), limitsFileName), filepath.Join(s.dir(key), allocOwnerName),
		filepath.Join(s.regionDir(key), regionFileName)} {
		if err := os.RemoveAll(f); err != nil {
			return fmt.Errorf("prepare allocation %s: remove what an earlier allocation left: %w", key, err)
		}
	}
	if err := ensureRegionFile(filepath.Join(s.regionDir(key), regionFileName)); err != nil {
		return fmt.Errorf("prepare allocation %s: %w", key, err)
	}
	if err := writeJSONAtomic(filepath.Join(s.dir(key), allocRecordName), rec); err != nil {
		return fmt.Errorf("prepare allocation %s: %w", key, err)
	}
	return nil
}

// resolve writes the limits file, then the owner record.
func (s allocStore) resolve(key string, limits []byte, owner ownerRecord) error {
	if err := writeFileAtomic(filepath.Join(s.limitsDir(key), limitsFileName), limits); err != nil {
		return fmt.Errorf("write limits of allocation %s: %w", key, err)
	}
	if err := writeJSONAtomic(filepath.Join(s.dir(key), allocOwnerName), owner); err != nil {
		return fmt.Errorf("write owner of allocation %s: %w", key, err)
	}
	return nil
}

// load reads an allocation's record and, if it was resolved, its owner.
func (s allocStore) load(key string) (allocRecord, *ownerRecord, error) {
	var rec allocRecord
	if err := readJSON(filepath.Join(s.dir(key), allocRecordName), &rec); err != nil {
		return rec, nil, err
	}
	var owner ownerRecord
	err := readJSON(filepath.Join(s.dir(key), allocOwnerName), &owner)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rec, nil, nil
	case err != nil:
		return rec, nil, err
	case owner.ID != rec.ID: // Left from an earlier allocation.
		return rec, nil, nil
	}
	return rec, &owner, nil
}

// keys lists the allocation directories.
func (s allocStore) keys() ([]string, error) {
	entries, err := os.ReadDir(s.root())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list allocations: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && safeName(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (s allocStore) remove(key string) error {
	if !safeName(key) {
		return nil
	}
	if err := os.RemoveAll(s.dir(key)); err != nil {
		return fmt.Errorf("remove allocation %s: %w", key, err)
	}
	return nil
}

// linkRegion makes regions/<podUID>/<container> name the allocation's
// region directory, so that RegionFile (and the node metrics) find a
// container's region by pod and container, as before allocations existed.
func (s allocStore) linkRegion(regions regionStore, podUID, container, key string) error {
	file, err := RegionFile(s.stateDir, podUID, container)
	if err != nil {
		return err
	}
	link := filepath.Dir(file)
	for _, d := range []string{regions.root(), filepath.Dir(link)} {
		if err := ensureRootDir(d, privateDirMode); err != nil {
			return err
		}
	}
	target := filepath.Join("..", "..", allocationsDirName, key, allocRegionDirName)
	if have, err := os.Readlink(link); err == nil && have == target {
		return nil
	}
	tmp := link + ".tmp-" + key
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("link region of %s/%s: %w", podUID, container, err)
	}
	// A directory left by an older agent cannot be renamed over.
	if info, err := os.Lstat(link); err == nil && info.IsDir() {
		if err := os.RemoveAll(link); err != nil {
			return fmt.Errorf("link region of %s/%s: %w", podUID, container, err)
		}
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("link region of %s/%s: %w", podUID, container, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path and renames
// it over path: a reader (the hook in the container, through its mount of
// the directory) sees the old file or the whole new one, never a part.
// There is no fsync: the rename is atomic for every process of the node,
// which is all that readers and a restarted agent need, and a node that
// loses power loses its containers too, so no file here outlives what it
// describes. (An fsync per Allocate and per resolution also cost tens of
// milliseconds of every pod's start on a busy disk.)
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // A no-op after the rename.
	_, err = tmp.Write(data)
	err = errors.Join(err, tmp.Chmod(allocFileMode), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeJSONAtomic(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}
