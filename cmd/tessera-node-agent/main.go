// Command tessera-node-agent is Tessera's per-node agent: the kubelet device
// plugin, the GPU health tracker and the publisher of the Node's GPUs.
package main

import (
	"os"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app"
	"github.com/tessera-gpu/tessera/pkg/command"
)

func main() {
	os.Exit(command.Main(app.NewCommand(), "Node agent failed"))
}
