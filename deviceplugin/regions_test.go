package deviceplugin

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tessera-gpu/tessera/pkg/hookenv"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// TestRegionDirectoryModesMountsAndCleanup: Allocate mounts the
// allocation's own region (read-write) and limits directory (read-only),
// renders no limits into the environment, and the resolution links the
// pod's region path to the allocation's region (for the node metrics);
// modes are what an unprivileged container needs; stale directories are
// swept and a deleted pod's are removed.
func TestRegionDirectoryModesMountsAndCleanup(t *testing.T) {
	slot := vgpu.SlotID(gpuUUID(0), 0)
	pod := podSpec("p", time.Now(), testNode, true, testContainer{name: "main", slots: []string{slot}, mem: 2048, cores: 30})
	h := newHarness(t, newFakeGPUs(1, 2), pod)
	// A directory left by a pod that is gone before the plugin starts.
	stale := filepath.Join(h.opts.StateDir, regionsDirName, "uid-gone-before")
	if err := os.MkdirAll(filepath.Join(stale, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.startPlugin(1)
	resp, err := h.kubelet.Allocate(h.ctx, []string{slot})
	if err != nil {
		t.Fatal(err)
	}
	h.kubelet.Record(pod, "main", []string{slot})

	alloc := filepath.Join(h.opts.StateDir, allocationsDirName, allocationKey([]string{slot}))
	wantMounts := map[string]struct {
		host     string
		readOnly bool
	}{
		ContainerHookLibrary: {h.opts.HookLibrary, true},
		ContainerPreloadFile: {filepath.Join(h.opts.StateDir, "ld.so.preload"), true},
		ContainerRegionDir:   {filepath.Join(alloc, allocRegionDirName), false},
		ContainerLimitsDir:   {filepath.Join(alloc, allocLimitsDirName), true},
	}
	if len(resp.GetMounts()) != len(wantMounts) {
		t.Errorf("got %d mounts, want %d", len(resp.GetMounts()), len(wantMounts))
	}
	for _, m := range resp.GetMounts() {
		want, ok := wantMounts[m.GetContainerPath()]
		if !ok || m.GetHostPath() != want.host || m.GetReadOnly() != want.readOnly {
			t.Errorf("mount %v, want host %q read-only %v", m, want.host, want.readOnly)
		}
	}
	env := resp.GetEnvs()
	for name, want := range map[string]string{
		hookenv.RegionFile: "/var/run/tessera/usage.region", hookenv.LimitsFile: "/var/run/tessera-limits/limits",
		hookenv.DeviceCount: "1", hookenv.DeviceUUIDVar(0): gpuUUID(0), hookenv.LimitsWaitMS: "60000",
	} {
		if env[name] != want {
			t.Errorf("%s = %q, want %q", name, env[name], want)
		}
	}
	if !hookenv.ValidAllocationID(env[hookenv.AllocationID]) {
		t.Errorf("%s = %q, not an allocation ID", hookenv.AllocationID, env[hookenv.AllocationID])
	}
	// Allocate cannot know the pod: the limits come only from the file.
	for _, name := range []string{hookenv.MemoryLimitVar(0), hookenv.CoreLimitVar(0)} {
		if v, ok := env[name]; ok {
			t.Errorf("%s = %q in the environment; limits belong in the limits file", name, v)
		}
	}
	l := h.waitLimits(resp)
	if len(l.Devices) != 1 || l.Devices[0] != (hookenv.DeviceLimit{UUID: gpuUUID(0), MemoryMiB: 2048, CorePercent: 30}) {
		t.Errorf("limits %+v, want 2048 MiB and 30%% on %s", l, gpuUUID(0))
	}

	link := filepath.Join(h.opts.StateDir, regionsDirName, "uid-p", "main")
	eventually(t, "region link", func() bool { _, err := os.Stat(filepath.Join(link, regionFileName)); return err == nil })
	checkMode(t, link, fs.ModeSymlink|0o777)
	checkMode(t, filepath.Join(alloc, allocRegionDirName), fs.ModeDir|0o755)
	checkMode(t, filepath.Join(alloc, allocLimitsDirName), fs.ModeDir|0o755)
	checkMode(t, filepath.Join(alloc, allocRegionDirName, regionFileName), 0o666)
	checkMode(t, filepath.Join(alloc, allocLimitsDirName, limitsFileName), 0o644)
	checkMode(t, filepath.Join(h.opts.StateDir, "ld.so.preload"), 0o644)
	if info, err := os.Stat(filepath.Join(link, regionFileName)); err != nil || info.Size() != 0 {
		t.Errorf("region file: %v; want an empty file", err)
	}

	// The initial sweep removed the directory of the pod that was gone.
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale region directory survived the start: %v", err)
	}
	// The periodic sweep removes one that appears later, and keeps the
	// live pod's.
	later := filepath.Join(h.opts.StateDir, regionsDirName, "uid-gone-later")
	if err := os.MkdirAll(later, 0o755); err != nil {
		t.Fatal(err)
	}
	eventually(t, "periodic sweep", func() bool { _, err := os.Stat(later); return os.IsNotExist(err) })
	if _, err := os.Stat(filepath.Join(link, regionFileName)); err != nil {
		t.Errorf("the live pod's region was swept: %v", err)
	}
	// Deleting the pod removes its region link and its allocation.
	if err := h.client.CoreV1().Pods("default").Delete(h.ctx, "p", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "region and allocation removal", func() bool {
		_, errLink := os.Lstat(filepath.Dir(link))
		_, errAlloc := os.Stat(alloc)
		return os.IsNotExist(errLink) && os.IsNotExist(errAlloc)
	})
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode() & (fs.ModeType | fs.ModePerm); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		t.Errorf("%s is owned by uid %d, want %d", path, st.Uid, os.Geteuid())
	}
}

func TestRegionFileReplacesPlantedLinksAndKeepsRegions(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "host-secret")
	tests := []struct {
		name string
		// plant prepares what the container left at the region file path.
		plant       func(t *testing.T, path string)
		wantContent string
	}{
		{"nothing", func(*testing.T, string) {}, ""},
		{"a symlink to a host file", func(t *testing.T, path string) {
			if err := os.Symlink(outside, path); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"a directory", func(t *testing.T, path string) {
			if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, ""},
		{"a region in use", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("live"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "live"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			store := regionStore{stateDir: t.TempDir()}
			dir := filepath.Join(store.root(), "uid", "c")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, filepath.Join(dir, regionFileName))
			got, err := store.ensureContainer("uid", "c")
			if err != nil || got != dir {
				t.Fatalf("ensureContainer = %q, %v", got, err)
			}
			checkMode(t, dir, fs.ModeDir|0o755)
			checkMode(t, filepath.Join(dir, regionFileName), 0o666)
			checkMode(t, outside, 0o600)
			if b, err := os.ReadFile(filepath.Join(dir, regionFileName)); err != nil || string(b) != tc.wantContent {
				t.Errorf("region file holds %q, %v; want %q", b, err, tc.wantContent)
			}
		})
	}
}

func TestRegionFile(t *testing.T) {
	tests := []struct {
		name, uid, container string
		want                 string // empty: an error is wanted
	}{
		{name: "pod and container", uid: "uid-1", container: "main", want: "/var/lib/tessera/regions/uid-1/main/usage.region"},
		{name: "dots inside a name", uid: "a..b", container: ".hidden", want: "/var/lib/tessera/regions/a..b/.hidden/usage.region"},
		{name: "parent as pod UID", uid: "..", container: "c"},
		{name: "parent as container", uid: "uid", container: ".."},
		{name: "current directory", uid: ".", container: "c"},
		{name: "slash in pod UID", uid: "a/b", container: "c"},
		{name: "climbing container", uid: "uid", container: "c/../../x"},
		{name: "empty pod UID", uid: "", container: "c"},
		{name: "empty container", uid: "uid", container: ""},
		{name: "NUL byte", uid: "uid", container: "nul\x00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RegionFile("/var/lib/tessera", tt.uid, tt.container)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "cannot name a directory") {
					t.Fatalf("RegionFile(%q, %q) = %q, %v; want an error", tt.uid, tt.container, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("RegionFile(%q, %q) = %q, %v; want %q", tt.uid, tt.container, got, err, tt.want)
			}
		})
	}
}

// TestEnsureContainerCreatesRegionFile: the file the plugin creates is the
// one RegionFile names, which the node metrics read.
func TestEnsureContainerCreatesRegionFile(t *testing.T) {
	store := regionStore{stateDir: t.TempDir()}
	dir, err := store.ensureContainer("uid", "main")
	if err != nil {
		t.Fatal(err)
	}
	file, err := RegionFile(store.stateDir, "uid", "main")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(file) != dir {
		t.Errorf("region directory %s does not hold RegionFile %s", dir, file)
	}
	if info, err := os.Stat(file); err != nil || !info.Mode().IsRegular() {
		t.Errorf("RegionFile %s is not the created region file: %v", file, err)
	}
}

func TestRegionPathsRejectPathNames(t *testing.T) {
	store := regionStore{stateDir: t.TempDir()}
	for _, tc := range []struct{ uid, container string }{
		{"..", "c"}, {"uid", ".."}, {"a/b", "c"}, {"uid", "c/../../x"}, {"", "c"}, {"uid", "nul\x00"},
	} {
		if _, err := store.ensureContainer(tc.uid, tc.container); err == nil {
			t.Errorf("ensureContainer(%q, %q) accepted a path", tc.uid, tc.container)
		}
	}
	if err := store.removePod(types.UID("..")); err != nil {
		t.Errorf("removePod(..): %v", err)
	}
	if _, err := os.Stat(store.stateDir); err != nil {
		t.Errorf("removePod(..) touched the state dir: %v", err)
	}
}

// FuzzRegionFile: whatever the API says a pod UID or container name is,
// RegionFile either refuses it or names a file exactly three levels below
// the regions directory.
func FuzzRegionFile(f *testing.F) {
	for _, seed := range [][2]string{{"uid", "main"}, {"..", "c"}, {"a/b", "c"}, {"uid", ""}, {"u\x00", "c"}, {".", "."}, {"..0", "0"}} {
		f.Add(seed[0], seed[1])
	}
	const stateDir = "/var/lib/tessera"
	regions := filepath.Join(stateDir, regionsDirName)
	f.Fuzz(func(t *testing.T, uid, container string) {
		file, err := RegionFile(stateDir, uid, container)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(regions, file)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") || len(strings.Split(rel, string(filepath.Separator))) != 3 ||
			filepath.Base(file) != regionFileName {
			t.Fatalf("RegionFile(%q, %q) = %q, outside %s/<pod>/<container>/", uid, container, file, regions)
		}
	})
}
