// Command tessera-estimator is Tessera's drop-in replacement for
// karmada-scheduler-estimator; see package app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json, as Karmada's estimator offers

	"github.com/tessera-gpu/tessera/cmd/tessera-estimator/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(app.NewCommand(ctx))
	stop()
	logs.FlushLogs()
	os.Exit(code)
}
