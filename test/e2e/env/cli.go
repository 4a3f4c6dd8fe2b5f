package env

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/tessera-gpu/tessera/test/cluster"
)

// cliBuildTag is the tag every Tessera build needs (see the Makefile).
const cliBuildTag = "kubernetes_protomessage_one_more_release"

// BuildCLI builds the tessera command (cmd/tessera) into dir and returns
// the binary's path, so that tests run it as a user would: a subprocess
// with a kubeconfig.
func BuildCLI(ctx context.Context, dir string) (string, error) {
	main, err := cluster.RepoFile("cmd/tessera")
	if err != nil {
		return "", fmt.Errorf("build the tessera CLI: %w", err)
	}
	bin := filepath.Join(dir, "tessera")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", cliBuildTag, "-o", bin, ".")
	cmd.Dir = main
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the tessera CLI: %w\n%s", err, out)
	}
	return bin, nil
}

// RunCLI runs the tessera binary bin against the environment's Karmada API
// server as the chart's dashboard identity (DashboardKubeconfig), as a
// person with that read-only kubeconfig would, and returns its standard
// output; an exit other than 0 is an error carrying its standard error.
// A forbidden answer it prints (a member it could not read through
// Karmada's proxy) is recorded and fails the test at Stop.
func (e *Env) RunCLI(ctx context.Context, bin string, args ...string) ([]byte, error) {
	full := append([]string{"--kubeconfig", e.dashboardKubeconfig}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	e.ids.refusals.addText("tessera "+strings.Join(args, " "), stdout.String()+"\n"+stderr.String())
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("tessera %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
