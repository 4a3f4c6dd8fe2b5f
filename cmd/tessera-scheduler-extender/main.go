// Command tessera-scheduler-extender is Tessera's kube-scheduler extender.
package main

import (
	"os"

	"github.com/tessera-gpu/tessera/cmd/tessera-scheduler-extender/app"
	"github.com/tessera-gpu/tessera/pkg/command"
)

func main() {
	os.Exit(command.Main(app.NewCommand(), "Scheduler extender failed"))
}
