// Command tessera shows the GPU fleet of a Karmada control plane: every
// member cluster's GPUs, what is free, what would fit, and who uses what.
// Installed as kubectl-tessera it is also a kubectl plugin. See package app.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/tessera-gpu/tessera/cmd/tessera/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, filepath.Base(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
