// Package app is the tessera-node-agent command: it wires the GPU tracker
// (pkg/gpu), the kubelet device plugin (deviceplugin) and the node publisher
// (pkg/nodepublish) to one API client, health probes, the node metrics
// (pkg/nodemetrics) and signal handling.
package app

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tessera-gpu/tessera/cmd/tessera-node-agent/app/options"
	"github.com/tessera-gpu/tessera/pkg/command"
	"github.com/tessera-gpu/tessera/pkg/gpu"
)

// Component names the agent in events and as the API client's user agent.
const Component = "tessera-node-agent"

// NewCommand returns the root command.
func NewCommand() *cobra.Command {
	opts := options.New()
	return command.New(Component, "Tessera's node agent: device plugin, GPU health and the Node's GPU inventory",
		`tessera-node-agent runs on every GPU node. It finds the GPUs through NVML
(or go-nvml's mock GPUs), follows their health through Xid events, advertises
one kubelet device per GPU slot, hands each container the GPUs and limits the
scheduler extender chose, publishes the GPU inventory annotation and the
memory and cores extended resources on its Node, and serves per-GPU and
per-container Prometheus metrics.`,
		opts, func(ctx context.Context) error { return Run(ctx, opts) })
}

// Run loads the configuration, connects to the API server and runs the agent
// until ctx is cancelled or a part of it fails.
func Run(ctx context.Context, opts *options.Options) error {
	cfg, err := opts.LoadConfig()
	if err != nil {
		return err
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %q: %w", opts.Kubeconfig, err)
	}
	restCfg.QPS, restCfg.Burst = opts.KubeAPIQPS, opts.KubeAPIBurst
	restCfg.UserAgent = Component
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create API client: %w", err)
	}
	// The node name seeds mock GPU UUIDs, so mock nodes differ.
	lib, err := gpu.NewLibrary(cfg.Node, opts.NodeName)
	if err != nil {
		return fmt.Errorf("open GPU backend %q: %w", cfg.Node.GPUBackend, err)
	}
	agent, err := NewAgent(ctx, cfg, opts, client, lib)
	if err != nil {
		return err
	}
	return agent.Run(ctx)
}
