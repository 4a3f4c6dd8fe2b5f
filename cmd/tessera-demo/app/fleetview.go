package app

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// fleetCLI runs the tessera command (cmd/tessera, built once by the demo)
// against the environment's Karmada API server, as a user would type it.
type fleetCLI struct {
	bin        string
	kubeconfig string
}

// show prints the command line, then what the command prints.
func (c fleetCLI) show(ctx context.Context, out io.Writer, args ...string) error {
	fmt.Fprintf(out, "\n$ tessera %s\n", strings.Join(args, " "))
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, append(args, "--kubeconfig", c.kubeconfig)...)
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tessera %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// serveDashboard runs `tessera dashboard` on addr until ctx ends (Ctrl-C),
// so that the fleet page of the demo's clusters can be opened.
func (c fleetCLI) serveDashboard(ctx context.Context, p *progress, addr string) error {
	cmd := exec.Command(c.bin, "dashboard", "--listen", addr, "--refresh", "5s", "--kubeconfig", c.kubeconfig)
	var output bytes.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start tessera dashboard: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	p.line("fleet page of the demo's clusters: http://%s/  (tessera dashboard; Ctrl-C ends the demo)", addr)
	select {
	case err := <-exited:
		return fmt.Errorf("tessera dashboard stopped: %v: %s", err, strings.TrimSpace(output.String()))
	case <-ctx.Done():
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	return nil
}

// buildFleetCLI builds cmd/tessera for the demo.
func buildFleetCLI(ctx context.Context, p *progress, dir string) (string, error) {
	var bin string
	err := p.run(ctx, "Build the tessera command (cmd/tessera), the fleet view", func(ctx context.Context) error {
		var err error
		bin, err = env.BuildCLI(ctx, dir)
		return err
	})
	return bin, err
}
