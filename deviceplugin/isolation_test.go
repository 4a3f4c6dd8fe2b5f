package deviceplugin

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// TestContainersCannotReachOtherRegions takes the device plugin's real
// Allocate answers for two containers that share one GPU and shows that
// neither can open the other's usage region or limits:
//
//   - no host path that A's answer mounts holds, or links to, B's files;
//   - the modes on the host are what docs/operations.md says: the mounted
//     directories are root's and 0755, the region 0666, every directory
//     above them root's and 0700;
//   - as root (the node agent's case): a process in a mount namespace
//     with exactly A's mounts, chrooted as a runtime would, sees none of
//     B's files even as root, and as an unprivileged user can use its own
//     region but plant nothing beside it and not write its limits; an
//     unprivileged process on the host opens no container's region.
func TestContainersCannotReachOtherRegions(t *testing.T) {
	now := time.Now()
	containers := map[string]testContainer{
		"a": {name: "main", slots: []string{vgpu.SlotID(gpuUUID(0), 0)}, mem: 1024, cores: 20},
		"b": {name: "main", slots: []string{vgpu.SlotID(gpuUUID(0), 1)}, mem: 2048, cores: 30},
	}
	podA := podSpec("a", now, testNode, true, containers["a"])
	podB := podSpec("b", now.Add(time.Second), testNode, true, containers["b"])
	h := newHarness(t, newFakeGPUs(1, 4), podA, podB)
	// The harness directory is private to this user; a node's state
	// directory is not, so the modes below are what decides.
	base := filepath.Dir(h.opts.StateDir)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	h.opts.HookLibrary = filepath.Join(base, "libtessera-hook.so")
	if err := os.WriteFile(h.opts.HookLibrary, []byte("hook"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.startPlugin(1)
	resps := map[string]*pluginapi.ContainerAllocateResponse{}
	for name, pod := range map[string]*corev1.Pod{"a": podA, "b": podB} {
		resp, err := h.kubelet.Allocate(h.ctx, containers[name].slots)
		if err != nil {
			t.Fatal(err)
		}
		h.kubelet.Record(pod, "main", containers[name].slots)
		h.waitLimits(resp)
		resps[name] = resp
	}
	files := map[string]containerFiles{"a": filesOf(t, resps["a"]), "b": filesOf(t, resps["b"])}

	t.Run("modes", func(t *testing.T) { checkRegionModes(t, h.opts.StateDir, files) })
	for _, pair := range [][2]string{{"a", "b"}, {"b", "a"}} {
		x, y := pair[0], pair[1]
		t.Run("mounts of "+x+" hold nothing of "+y, func(t *testing.T) { checkMountsExclude(t, resps[x], files[y]) })
		t.Run("container "+x+" in its own mount namespace", func(t *testing.T) {
			requireRoot(t)
			probeContainer(t, filepath.Join(base, "root-"+x), resps[x], files[y])
		})
	}
	t.Run("unprivileged process on the host", func(t *testing.T) {
		requireRoot(t)
		runProbe(t, isolationProbe{
			UID: nobody, GID: nobody,
			MustOpen:    []string{filepath.Join(h.opts.StateDir, preloadFileName)},
			MustNotOpen: []string{files["a"].region, files["b"].region, files["a"].limits, filepath.Join(h.opts.StateDir, allocationsDirName)},
		})
	})
}

// containerFiles are the host paths, links resolved, of what one
// container's answer mounts.
type containerFiles struct {
	regionDir, region, limitsDir, limits, allocDir string
}

func filesOf(t *testing.T, resp *pluginapi.ContainerAllocateResponse) containerFiles {
	t.Helper()
	var f containerFiles
	for _, m := range resp.GetMounts() {
		switch m.GetContainerPath() {
		case ContainerRegionDir:
			f.regionDir = resolved(t, m.GetHostPath())
		case ContainerLimitsDir:
			f.limitsDir = resolved(t, m.GetHostPath())
		}
	}
	if f.regionDir == "" || f.limitsDir == "" {
		t.Fatalf("the answer mounts no region or limits directory: %v", resp.GetMounts())
	}
	f.region = filepath.Join(f.regionDir, regionFileName)
	f.limits = filepath.Join(f.limitsDir, limitsFileName)
	f.allocDir = filepath.Dir(f.regionDir)
	return f
}

func resolved(t *testing.T, path string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		t.Fatal(err)
	}
	return real
}

// within reports whether path is dir or below it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkMountsExclude: no host path x's answer mounts is, holds or links to
// one of y's files, the only writable mount is x's region directory, and
// it holds x's region alone.
func checkMountsExclude(t *testing.T, x *pluginapi.ContainerAllocateResponse, y containerFiles) {
	t.Helper()
	forbidden := []string{y.region, y.limits, y.regionDir, y.limitsDir, y.allocDir}
	var writable []string
	for _, m := range x.GetMounts() {
		host := resolved(t, m.GetHostPath())
		if !m.GetReadOnly() {
			writable = append(writable, m.GetContainerPath())
		}
		for _, f := range forbidden {
			if within(host, f) {
				t.Errorf("mount %s (host %s) reaches %s", m.GetContainerPath(), host, f)
			}
		}
		info, err := os.Stat(host)
		if err != nil {
			t.Fatal(err)
		}
		if !info.IsDir() {
			continue
		}
		// What the container sees in the mount: a link there would resolve
		// in the container, and a hard link would be the file itself.
		err = filepath.WalkDir(host, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				t.Errorf("mount %s holds a link %s", m.GetContainerPath(), path)
			}
			for _, f := range []string{y.region, y.limits} {
				if sameFile(path, f) {
					t.Errorf("mount %s holds %s, which is %s", m.GetContainerPath(), path, f)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(writable, []string{ContainerRegionDir}) {
		t.Errorf("writable mounts %v, want only %s", writable, ContainerRegionDir)
	}
	region := resolved(t, regionMount(x))
	if entries, err := os.ReadDir(region); err != nil || len(entries) != 1 || entries[0].Name() != regionFileName {
		t.Errorf("the writable mount %s holds %v (%v), want only %s", region, entries, err, regionFileName)
	}
}

func sameFile(a, b string) bool {
	ia, errA := os.Lstat(a)
	ib, errB := os.Lstat(b)
	return errA == nil && errB == nil && os.SameFile(ia, ib)
}

// checkRegionModes: every path from the state directory down to both
// containers' files has the mode docs/operations.md gives, and is root's
// (this user's in a test that does not run as root).
func checkRegionModes(t *testing.T, stateDir string, files map[string]containerFiles) {
	t.Helper()
	want := map[string]fs.FileMode{
		filepath.Join(stateDir, preloadFileName):    0o644,
		filepath.Join(stateDir, allocationsDirName): fs.ModeDir | privateDirMode,
		filepath.Join(stateDir, regionsDirName):     fs.ModeDir | privateDirMode,
	}
	for _, f := range files {
		want[f.allocDir] = fs.ModeDir | 0o700
		want[filepath.Join(f.allocDir, allocRecordName)] = 0o644
		want[f.regionDir] = fs.ModeDir | 0o755
		want[f.region] = 0o666
		want[f.limitsDir] = fs.ModeDir | 0o755
		want[f.limits] = 0o644
	}
	for _, pod := range []string{"uid-a", "uid-b"} {
		want[filepath.Join(stateDir, regionsDirName, pod)] = fs.ModeDir | 0o700
	}
	for path, mode := range want {
		checkMode(t, path, mode)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a mount namespace and switches to an unprivileged user, as a container runtime does")
	}
}

// probeContainer runs the probe in a new mount namespace holding exactly
// resp's mounts under root, chrooted there, as a runtime would.
func probeContainer(t *testing.T, root string, resp *pluginapi.ContainerAllocateResponse, other containerFiles) {
	t.Helper()
	p := isolationProbe{Root: root, UID: nobody, GID: nobody,
		MustOpenRW:     []string{filepathJoin(ContainerRegionDir, regionFileName)},
		MustOpen:       []string{filepathJoin(ContainerLimitsDir, limitsFileName), ContainerPreloadFile, ContainerHookLibrary},
		MustNotOpenRW:  []string{filepathJoin(ContainerLimitsDir, limitsFileName), ContainerPreloadFile},
		MustNotCreate:  []string{ContainerRegionDir, ContainerLimitsDir},
		MustNotOpen:    []string{other.region, filepathJoin(ContainerRegionDir, "..", "..", "..", other.region)},
		ForbiddenFiles: fileIDs(t, other.region, other.limits),
	}
	for _, m := range resp.GetMounts() {
		p.Mounts = append(p.Mounts, probeMount{Host: m.GetHostPath(), Container: m.GetContainerPath(), ReadOnly: m.GetReadOnly()})
	}
	runProbe(t, p)
}

// filepathJoin joins without cleaning, so that ".." reaches the kernel.
func filepathJoin(parts ...string) string { return strings.Join(parts, "/") }

func fileIDs(t *testing.T, paths ...string) []fileID {
	t.Helper()
	var out []fileID
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		out = append(out, fileID{Path: p, Dev: uint64(st.Dev), Ino: st.Ino})
	}
	return out
}

// runProbe runs the test binary as the probe (TestMain) and reports what
// it found.
func runProbe(t *testing.T, p isolationProbe) {
	t.Helper()
	spec, err := p.encode()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), isolationProbeEnv+"="+spec)
	if p.Root != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case p.Root != "" && !errors.As(err, &exit):
		// No mount namespace here (a container without CAP_SYS_ADMIN).
		t.Skipf("cannot start a process in a new mount namespace: %v", err)
	default:
		t.Errorf("probe %+v: %v\n%s", p, err, out)
	}
}

// TestStartNarrowsOlderModes: an agent of an older version left the
// directories above the mounted ones at 0755; a starting plugin makes them
// root-only before it restores any allocation.
func TestStartNarrowsOlderModes(t *testing.T) {
	h := newHarness(t, newFakeGPUs(1, 2))
	dirs := []string{filepath.Join(h.opts.StateDir, allocationsDirName), filepath.Join(h.opts.StateDir, regionsDirName)}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.startPlugin(1)
	for _, d := range dirs {
		checkMode(t, d, fs.ModeDir|privateDirMode)
	}
}
