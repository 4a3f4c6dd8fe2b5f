package cluster

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// watchdogHelperEnv makes the test binary act as a parent that starts a
// server and then waits to be killed (see TestServerDiesWithKilledParent).
const watchdogHelperEnv = "TESSERA_CLUSTER_WATCHDOG_HELPER"

// TestServerDiesWithKilledParent checks the watchdog: a server started by
// a test binary that is killed outright (no cleanup runs, as with
// `go test -timeout`) dies with it instead of living on as an orphan.
func TestServerDiesWithKilledParent(t *testing.T) {
	if dir := os.Getenv(watchdogHelperEnv); dir != "" {
		runWatchdogHelper(dir)
		return
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithKilledParent$", "-test.v")
	helper.Env = append(os.Environ(), watchdogHelperEnv+"="+t.TempDir())
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()

	pid := 0
	scanner := bufio.NewScanner(stdout)
	for pid == 0 && scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "server pid "); ok {
			pid, _ = strconv.Atoi(rest)
		}
	}
	if pid == 0 {
		t.Fatalf("helper never reported its server's pid (%v)", scanner.Err())
	}
	server := &process{name: "sleep", pid: pid}
	if !server.alive() {
		t.Fatalf("server %d not running before its parent is killed", pid)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for server.alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if server.alive() {
		_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
		t.Fatalf("server %d outlived its killed parent", pid)
	}
}

// runWatchdogHelper starts a long sleep as a server, reports its pid and
// waits to be killed.
func runWatchdogHelper(dir string) {
	p, err := startProcess("sleep", filepath.Join(dir, "sleep.log"), "/bin/sleep", []string{"300"})
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	fmt.Printf("server pid %d\n", p.pid)
	time.Sleep(time.Minute) // the test kills us long before
	os.Exit(1)
}
