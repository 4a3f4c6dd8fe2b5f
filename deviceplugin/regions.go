package deviceplugin

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"k8s.io/apimachinery/pkg/types"
)

const (
	regionsDirName  = "regions"
	regionFileName  = "usage.region"
	preloadFileName = "ld.so.preload"
	// regionDirMode is the mode of the directories mounted into a
	// container (an allocation's region/ and limits/): any user in the
	// container may enter them, only root writes them, so that a
	// container's unprivileged processes can neither remove nor plant a
	// file there (a root process in it can, which is why the agent never
	// follows a link it finds there).
	regionDirMode = 0o755
	// privateDirMode is the mode of every directory above the mounted
	// ones (allocations/, allocations/<key>/, regions/, regions/<pod>/):
	// only root may enter them. A container never needs to: the runtime
	// bind-mounts its region/ and limits/ directly, and lookups inside a
	// mount never pass through the host directories above it. So no
	// unprivileged process on the node (or in a pod that mounts a host
	// path above them) can open a container's region, which is mode 0666
	// because the container's processes run as any user.
	privateDirMode = 0o700
	// regionFileMode: the hook in the container runs as any user and must
	// map the region read-write.
	regionFileMode = 0o666
	preloadMode    = 0o644
	// stateDirMode: the state directory holds ld.so.preload, which the
	// kubelet mounts into containers; it is created only when the chart's
	// hostPath volume did not create it.
	stateDirMode = 0o755
)

// regionStore is the plugin's part of the state directory on the host:
// ld.so.preload and regions/<podUID>/<container>/usage.region.
type regionStore struct {
	stateDir string
}

func (s regionStore) root() string        { return filepath.Join(s.stateDir, regionsDirName) }
func (s regionStore) preloadPath() string { return filepath.Join(s.stateDir, preloadFileName) }

// prepare creates the state directory and writes ld.so.preload. The file
// is replaced atomically, and only when its content differs, because
// running containers bind-mount it.
func (s regionStore) prepare() error {
	if err := os.MkdirAll(s.stateDir, stateDirMode); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := ensureRootDir(s.root(), privateDirMode); err != nil {
		return err
	}
	want := []byte(ContainerHookLibrary + "\n")
	if have, err := os.ReadFile(s.preloadPath()); err == nil && bytes.Equal(have, want) {
		if err := os.Chmod(s.preloadPath(), preloadMode); err != nil {
			return fmt.Errorf("set mode of %s: %w", s.preloadPath(), err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(s.stateDir, ".ld.so.preload-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", s.preloadPath(), err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // A no-op after the rename.
	_, err = tmp.Write(want)
	err = errors.Join(err, tmp.Chmod(preloadMode), tmp.Close())
	if err == nil {
		err = os.Rename(tmp.Name(), s.preloadPath())
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", s.preloadPath(), err)
	}
	return nil
}

// safeName reports whether s can be used as one path component.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// RegionFile returns the host path of a container's usage region under the
// node's state directory: <stateDir>/regions/<podUID>/<container>/usage.region.
// It is the one definition of that layout: the plugin creates the file
// there and the node metrics read it from there. Pod UID and container name
// come from the API, so each must be a single path component; anything that
// could climb out of the regions directory is an error.
func RegionFile(stateDir, podUID, container string) (string, error) {
	if !safeName(podUID) || !safeName(container) {
		return "", fmt.Errorf("pod UID %q or container name %q cannot name a directory", podUID, container)
	}
	return filepath.Join(stateDir, regionsDirName, podUID, container, regionFileName), nil
}

// ensureContainer creates the container's region directory (0755, owned by
// root) with an empty region file (0666) that the hook initialises, and
// returns the directory. An existing region file is kept as it is: the hook
// may be using it.
func (s regionStore) ensureContainer(podUID, container string) (string, error) {
	file, err := RegionFile(s.stateDir, podUID, container)
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(file)
	// The root too: an operator may have cleaned the state directory.
	for _, d := range []struct {
		path string
		mode fs.FileMode
	}{{s.root(), privateDirMode}, {filepath.Dir(dir), privateDirMode}, {dir, regionDirMode}} {
		if err := ensureRootDir(d.path, d.mode); err != nil {
			return "", err
		}
	}
	if err := ensureRegionFile(file); err != nil {
		return "", err
	}
	return dir, nil
}

// ensureRootDir creates dir with mode, or fixes the mode and owner of an
// existing one (an agent of an older version may have made it wider); a
// non-directory there is an error.
func ensureRootDir(dir string, mode fs.FileMode) error {
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create region directory %s: %w", dir, err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("inspect region directory %s: %w", dir, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("region directory %s exists and is not a directory (%s)", dir, info.Mode().Type())
	}
	if info.Mode().Perm() != mode {
		if err := os.Chmod(dir, mode); err != nil {
			return fmt.Errorf("set mode of region directory %s: %w", dir, err)
		}
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
		if err := os.Lchown(dir, 0, 0); err != nil {
			return fmt.Errorf("make root own region directory %s: %w", dir, err)
		}
	}
	return nil
}

// ensureRegionFile creates the empty region file. The container can write
// its region directory, so whatever is at the path may be a link planted to
// make the plugin chmod a host file: links are never followed, and anything
// but a regular file is replaced.
func ensureRegionFile(path string) error {
	const noFollow = syscall.O_NOFOLLOW | syscall.O_CLOEXEC
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, regionFileMode)
	if errors.Is(err, fs.ErrExist) {
		if f, err = os.OpenFile(path, os.O_RDONLY|noFollow, 0); err == nil {
			if info, statErr := f.Stat(); statErr != nil || !info.Mode().IsRegular() {
				_ = f.Close()
				f, err = nil, fmt.Errorf("not a regular file")
			}
		}
		if err != nil { // A link, a directory, a device: replace it.
			if rmErr := os.RemoveAll(path); rmErr != nil {
				return fmt.Errorf("replace region file %s: %w", path, rmErr)
			}
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|noFollow, regionFileMode)
		}
	}
	if err != nil {
		return fmt.Errorf("create region file %s: %w", path, err)
	}
	// The umask narrowed the mode given to open; set it on the descriptor,
	// never through the path.
	err = f.Chmod(regionFileMode)
	if err == nil && os.Geteuid() == 0 {
		err = f.Chown(0, 0)
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("set mode of region file %s: %w", path, err)
	}
	return nil
}

// removePod deletes the region directories of one pod.
func (s regionStore) removePod(podUID types.UID) error {
	if !safeName(string(podUID)) {
		return nil
	}
	if err := os.RemoveAll(filepath.Join(s.root(), string(podUID))); err != nil {
		return fmt.Errorf("remove region directory of pod %s: %w", podUID, err)
	}
	return nil
}

// sweep removes the region directories of pods that hasPod does not know.
// The directory is listed before any pod is looked up: a directory listed
// was created by an Allocate that had already found its pod in the index,
// so a pod added meanwhile is never swept away.
func (s regionStore) sweep(hasPod func(types.UID) bool) ([]types.UID, error) {
	entries, err := os.ReadDir(s.root())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list region directories: %w", err)
	}
	var removed []types.UID
	var errs []error
	for _, e := range entries {
		uid := types.UID(e.Name())
		if hasPod(uid) {
			continue
		}
		if err := s.removePod(uid); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, uid)
	}
	return removed, errors.Join(errs...)
}
