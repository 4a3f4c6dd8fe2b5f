// Command tessera-webhook is Tessera's mutating admission webhook for pods
// (package pkg/admission): under compat: hami it gives containers that ask
// for HAMi's GPU memory or cores without nvidia.com/gpu the count HAMi's
// own webhook gives them (hami.defaultGPUNum).
package main

import (
	"os"

	"github.com/tessera-gpu/tessera/cmd/tessera-webhook/app"
	"github.com/tessera-gpu/tessera/pkg/command"
)

func main() {
	os.Exit(command.Main(app.NewCommand(), "Admission webhook failed"))
}
