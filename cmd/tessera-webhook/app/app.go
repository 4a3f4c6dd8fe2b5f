// Package app is the tessera-webhook command: it serves pkg/admission's
// handler over TLS, with health probes.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/admission"
	"github.com/tessera-gpu/tessera/pkg/command"
	"github.com/tessera-gpu/tessera/pkg/config"
)

// Component names the webhook in logs.
const Component = "tessera-webhook"

const webhookPath = admission.MutatePodsPath

// shutdownTimeout bounds how long in-flight reviews may finish; the API
// server's own timeout for a webhook call is at most 30 seconds.
const shutdownTimeout = 10 * time.Second

// NewCommand returns the root command.
func NewCommand() *cobra.Command {
	opts := NewOptions()
	return command.New(Component,
		"Tessera's mutating admission webhook: HAMi's defaultGPUNum under compat: hami",
		`tessera-webhook is called by the API server when a pod is created. Under
compat: hami it adds nvidia.com/gpu: <hami.defaultGPUNum> to the limits of a
container that asks for nvidia.com/gpumem, gpumem-percentage or gpucores
without nvidia.com/gpu, as HAMi's webhook does, and changes nothing else.`,
		opts, func(ctx context.Context) error { return Run(ctx, opts) })
}

// Run serves until ctx is cancelled or a server fails.
func Run(ctx context.Context, opts *Options) error {
	logger := klog.FromContext(ctx).WithName(Component)
	cfg, err := config.Load(opts.ConfigFile)
	if err != nil {
		return err
	}
	if cfg.Compat != config.CompatHAMi {
		return fmt.Errorf("config %s: compat is %q; the admission webhook only acts under compat %q (HAMi's defaultGPUNum), so it is not needed", opts.ConfigFile, cfg.Compat, config.CompatHAMi)
	}
	pair, err := newKeyPair(opts.CertFile, opts.KeyFile, logger)
	if err != nil {
		return err
	}
	servers := []*command.Server{{
		Name: "webhook", Addr: opts.BindAddress, Handler: admission.Handler(cfg, logger), Listen: opts.Listen,
		TLS: &tls.Config{GetCertificate: pair.getCertificate, MinVersion: tls.VersionTLS12},
	}}
	if opts.HealthBindAddress != "0" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		// Ready once serving: the webhook holds no state to wait for.
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		servers = append(servers, &command.Server{Name: "health", Addr: opts.HealthBindAddress, Handler: mux, Listen: opts.Listen})
	}
	errc := make(chan error, len(servers))
	defer command.Shutdown(logger, shutdownTimeout, servers)
	for _, s := range servers {
		if err := s.Start(ctx, errc); err != nil {
			return err
		}
	}
	logger.Info("Admission webhook is serving", "address", opts.BindAddress, "path", webhookPath, "defaultGPUNum", cfg.HAMi.DefaultGPUNum)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}
