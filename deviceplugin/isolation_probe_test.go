package deviceplugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// isolationProbeEnv makes the test binary run an isolationProbe instead of
// the tests (TestMain): the probe must be its own process, since it
// changes its mount namespace, root directory and user.
const isolationProbeEnv = "TESSERA_ISOLATION_PROBE"

// nobody is the unprivileged user (and group) the probe becomes.
const nobody = 65534

// isolationProbe is what one probe process sets up and checks. With Root
// it plays a container: in its own mount namespace it bind-mounts Mounts
// under Root as a runtime would, chroots there, walks everything it sees
// (as root) for ForbiddenFiles, then becomes UID:GID for the rest. Without
// Root it only becomes UID:GID on the host.
type isolationProbe struct {
	Root           string       `json:"root,omitempty"`
	Mounts         []probeMount `json:"mounts,omitempty"`
	UID            int          `json:"uid"`
	GID            int          `json:"gid"`
	ForbiddenFiles []fileID     `json:"forbiddenFiles,omitempty"`
	// MustOpen must open read-only, MustOpenRW read-write; MustNotOpen
	// must not open at all, MustNotOpenRW not for writing; in each of
	// MustNotCreate no file can be created.
	MustOpen      []string `json:"mustOpen,omitempty"`
	MustOpenRW    []string `json:"mustOpenRW,omitempty"`
	MustNotOpen   []string `json:"mustNotOpen,omitempty"`
	MustNotOpenRW []string `json:"mustNotOpenRW,omitempty"`
	MustNotCreate []string `json:"mustNotCreate,omitempty"`
}

type probeMount struct {
	Host      string `json:"host"`
	Container string `json:"container"`
	ReadOnly  bool   `json:"readOnly"`
}

// fileID names one file by device and inode, wherever it is seen.
type fileID struct {
	Path string `json:"path"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

func (p isolationProbe) encode() (string, error) {
	b, err := json.Marshal(p)
	return string(b), err
}

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(isolationProbeEnv); ok {
		os.Exit(runIsolationProbe(spec))
	}
	os.Exit(m.Run())
}

// runIsolationProbe returns 0 when every check held, 1 when one failed
// (each failure printed), 2 when the probe could not be set up.
func runIsolationProbe(spec string) int {
	var p isolationProbe
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		fmt.Println("decode probe:", err)
		return 2
	}
	if err := p.enter(); err != nil {
		fmt.Println("set up probe:", err)
		return 2
	}
	failures := p.walkForForbidden()
	if err := becomeUser(p.UID, p.GID); err != nil {
		fmt.Println("become user:", err)
		return 2
	}
	failures = append(failures, p.checkAccess()...)
	for _, f := range failures {
		fmt.Println(f)
	}
	if len(failures) > 0 {
		return 1
	}
	return 0
}

// enter mounts and chroots when the probe plays a container. The mount
// namespace is new (the parent started it with CLONE_NEWNS, and Go made
// every mount private in it), so nothing here reaches the host's.
func (p isolationProbe) enter() error {
	if p.Root == "" {
		return nil
	}
	for _, m := range p.Mounts {
		info, err := os.Stat(m.Host)
		if err != nil {
			return err
		}
		target := filepath.Join(p.Root, m.Container)
		if info.IsDir() {
			err = os.MkdirAll(target, 0o755)
		} else if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
			err = os.WriteFile(target, nil, 0o644)
		}
		if err != nil {
			return err
		}
		if err := syscall.Mount(m.Host, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s at %s: %w", m.Host, target, err)
		}
		if m.ReadOnly {
			if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("remount %s read-only: %w", target, err)
			}
		}
	}
	if err := syscall.Chroot(p.Root); err != nil {
		return fmt.Errorf("chroot %s: %w", p.Root, err)
	}
	return os.Chdir("/")
}

// walkForForbidden looks at everything the probe can see (from its root)
// for the forbidden files, by device and inode: a hard link or a mount of
// them under any name counts.
func (p isolationProbe) walkForForbidden() []string {
	if p.Root == "" || len(p.ForbiddenFiles) == 0 {
		return nil
	}
	var failures []string
	err := filepath.WalkDir("/", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		for _, f := range p.ForbiddenFiles {
			if uint64(st.Dev) == f.Dev && st.Ino == f.Ino {
				failures = append(failures, fmt.Sprintf("%s in the container is the other container's %s", path, f.Path))
			}
		}
		return nil
	})
	if err != nil {
		failures = append(failures, fmt.Sprintf("walk the container's files: %v", err))
	}
	return failures
}

// becomeUser drops root for good: groups, then group, then user (Go
// applies each to every thread).
func becomeUser(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(gid); err != nil {
		return err
	}
	return syscall.Setuid(uid)
}

func (p isolationProbe) checkAccess() []string {
	var failures []string
	try := func(path string, flag int) error {
		f, err := os.OpenFile(path, flag, 0o644)
		if err == nil {
			_ = f.Close()
		}
		return err
	}
	for _, path := range p.MustOpen {
		if err := try(path, os.O_RDONLY); err != nil {
			failures = append(failures, fmt.Sprintf("uid %d cannot read %s: %v", p.UID, path, err))
		}
	}
	for _, path := range p.MustOpenRW {
		if err := try(path, os.O_RDWR); err != nil {
			failures = append(failures, fmt.Sprintf("uid %d cannot open %s read-write: %v", p.UID, path, err))
		}
	}
	for _, path := range p.MustNotOpen {
		if err := try(path, os.O_RDONLY); !denied(err) {
			failures = append(failures, fmt.Sprintf("uid %d opened %s (%v)", p.UID, path, err))
		}
	}
	for _, path := range p.MustNotOpenRW {
		if err := try(path, os.O_RDWR); !denied(err) {
			failures = append(failures, fmt.Sprintf("uid %d opened %s for writing (%v)", p.UID, path, err))
		}
	}
	for _, dir := range p.MustNotCreate {
		if err := try(filepath.Join(dir, "planted"), os.O_WRONLY|os.O_CREATE|os.O_EXCL); !denied(err) {
			failures = append(failures, fmt.Sprintf("uid %d created a file in %s (%v)", p.UID, dir, err))
		}
	}
	return failures
}

// denied: the kernel refused (permission, read-only mount) or there is no
// such file to be seen.
func denied(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrNotExist)
}
