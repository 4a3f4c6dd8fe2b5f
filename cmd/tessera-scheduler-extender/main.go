// Command tessera-scheduler-extender is Tessera's kube-scheduler extender.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer klog.Flush()
	if err := app.NewCommand().ExecuteContext(ctx); err != nil {
		klog.ErrorS(err, "Scheduler extender failed")
		return 1
	}
	return 0
}
