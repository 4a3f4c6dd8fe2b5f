// Command tessera-demo is what `make demo` runs: Tessera across clusters,
// with real Karmada and Kubernetes servers on loopback and mock GPUs (see
// package app); --preview runs the in-process preview of one node.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tessera-gpu/tessera/cmd/tessera-demo/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.NewCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tessera-demo:", err)
		os.Exit(1)
	}
}
