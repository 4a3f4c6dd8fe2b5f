// Command tessera-node-agent is Tessera's per-node agent: the kubelet device
// plugin, the GPU health tracker and the publisher of the Node's GPUs.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer klog.Flush()
	if err := app.NewCommand().ExecuteContext(ctx); err != nil {
		klog.ErrorS(err, "Node agent failed")
		return 1
	}
	return 0
}
