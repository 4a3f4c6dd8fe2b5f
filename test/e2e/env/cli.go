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
// server with the admin kubeconfig and returns its standard output; an
// exit other than 0 is an error carrying its standard error.
func (e *Env) RunCLI(ctx context.Context, bin string, args ...string) ([]byte, error) {
	full := append([]string{"--kubeconfig", e.karmada.Kubeconfig()}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("tessera %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
