//go:build linux

package region

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hookBuild builds the interception library, the fake driver and the C
// helper with the library's own Makefile, and returns the build directory.
func hookBuild(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"make", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: cannot build cuda-hook to produce a real region", tool)
		}
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "cuda-hook"))
	if err != nil {
		t.Fatalf("locate cuda-hook: %v", err)
	}
	out, err := exec.Command("make", "-C", dir, "all").CombinedOutput()
	if err != nil {
		t.Fatalf("make -C %s all: %v\n%s", dir, err, out)
	}
	return filepath.Join(dir, "build")
}

// kernelMicros is the simulated duration of each of the writer's kernels.
const kernelMicros = 500

// writer is a CUDA process of a test container, running under the hook.
type writer struct {
	cmd   *exec.Cmd
	stdin interface{ Close() error }
}

func startWriter(t *testing.T, build, region string, allocMiB, launches int) *writer {
	t.Helper()
	cmd := exec.Command(filepath.Join(build, "tests", "region_writer"),
		fmt.Sprint(allocMiB), fmt.Sprint(launches))
	cmd.Env = append(os.Environ(),
		"LD_PRELOAD="+filepath.Join(build, "libtessera-hook.so"),
		"LD_LIBRARY_PATH="+filepath.Join(build, "fake"),
		"TESSERA_DEVICE_COUNT=1", "TESSERA_MEMORY_LIMIT_MIB_0=2048",
		"TESSERA_CORE_LIMIT_0=50", "TESSERA_DEVICE_UUID_0=GPU-fa4e0000-0000-0000-0000-000000000000",
		// Each simulated kernel keeps the fake GPU busy this long, which
		// the library measures with its events and records as busy time.
		"FAKECUDA_KERNEL_US="+fmt.Sprint(kernelMicros),
		"TESSERA_REGION_FILE="+region)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("stdin pipe: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start region_writer: %v", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("region_writer said %q, %v", line, err)
	}
	return &writer{cmd: cmd, stdin: stdin}
}

func (w *writer) finish(t *testing.T) {
	t.Helper()
	if err := w.stdin.Close(); err != nil {
		t.Fatalf("close writer's stdin: %v", err)
	}
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("region_writer: %v", err)
	}
}

func snapshot(t *testing.T, r *Reader) *Snapshot {
	t.Helper()
	s, err := r.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if len(s.Devices) != 1 {
		t.Fatalf("%d devices, want 1", len(s.Devices))
	}
	return s
}

// TestReadRegionWrittenByHook has the C library write a region (a process
// holding memory and pacing launches) and reads it back through Reader.
func TestReadRegionWrittenByHook(t *testing.T) {
	build := hookBuild(t)
	path := filepath.Join(t.TempDir(), "container.region")
	if err := os.WriteFile(path, nil, 0o666); err != nil { // as the device plugin leaves it
		t.Fatalf("pre-create region: %v", err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	if _, err := r.Snapshot(); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Snapshot of an empty region: %v, want ErrNotReady", err)
	}
	w := startWriter(t, build, path, 300, 20)
	s := snapshot(t, r)
	d := s.Devices[0]
	checkHeld(t, d, w.cmd.Process.Pid)
	w.finish(t)
	if d := snapshot(t, r).Devices[0]; d.UsedBytes != 0 || len(d.Processes) != 0 || d.BusySeconds != 0 {
		t.Errorf("after exit: used %d bytes and %v busy seconds by %d processes, want nothing",
			d.UsedBytes, d.BusySeconds, len(d.Processes))
	}
}

func checkHeld(t *testing.T, d Device, pid int) {
	t.Helper()
	if d.LimitBytes != 2048*mib || d.CoreLimitPercent != 50 || !strings.HasPrefix(d.UUID, "GPU-fa4e") {
		t.Errorf("device: limit %d, core %d, uuid %q", d.LimitBytes, d.CoreLimitPercent, d.UUID)
	}
	if d.UsedBytes < 300*mib || d.UsedBytes > d.LimitBytes {
		t.Errorf("used %d bytes, want the 300 MiB allocation plus context overhead", d.UsedBytes)
	}
	if len(d.Processes) != 1 {
		t.Fatalf("%d processes, want 1", len(d.Processes))
	}
	p := d.Processes[0]
	if int(p.PID) != pid || p.UsedBytes != d.UsedBytes || p.Launches != 20 {
		t.Errorf("process %+v, want pid %d holding all usage after 20 launches", p, pid)
	}
	// Busy time is what the pacer charged (cuda-hook/README.md, "Core
	// limit"): every launch pays the running estimate and a sample is
	// timed, so over 20 launches from a cold estimate it is near, not at,
	// the kernels' time (the estimate converges as samples come in); it is
	// never more than the kernels plus the CPU time between their events.
	kernel := float64(kernelMicros) / 1e6
	if d.BusySeconds < 10*kernel || d.BusySeconds > 20*kernel*1.5 || p.BusySeconds != d.BusySeconds {
		t.Errorf("busy %v s (process %v s), want about 20 kernels of %v s",
			d.BusySeconds, p.BusySeconds, kernel)
	}
	if since := time.Since(p.LastLaunch); since < 0 || since > time.Minute {
		t.Errorf("last launch %v is not recent", p.LastLaunch)
	}
}

// TestOpenRefusesWhatIsNotARegion covers names a container could plant in
// its (writable) region directory for the node agent to open.
func TestOpenRefusesWhatIsNotARegion(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, make([]byte, Size), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(path string) error
		want  string
	}{
		{"missing", func(string) error { return nil }, "no such file"},
		{"symlink", func(p string) error { return os.Symlink(secret, p) }, "symbolic link"},
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "not a regular file"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := tt.setup(path); err != nil {
				t.Fatalf("setup: %v", err)
			}
			r, err := Open(path)
			if err == nil {
				r.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestSnapshotSurvivesTruncation: the container can shrink its region file
// while the node agent has it mapped; reading must fail, not crash.
func TestSnapshotSurvivesTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shrinking.region")
	if err := os.WriteFile(path, encode(t, testRegion{limits: []uint64{mib}}), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer r.Close()
	if _, err := r.Snapshot(); err != nil {
		t.Fatalf("Snapshot before truncation: %v", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Snapshot(); err == nil || !strings.Contains(err.Error(), "changed under") {
		t.Errorf("Snapshot after truncation: %v, want a fault turned into an error", err)
	}
}
