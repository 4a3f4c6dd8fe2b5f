package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	webhookapp "github.com/tessera-gpu/tessera/cmd/tessera-webhook/app"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// startWebhook runs Tessera's admission webhook in process under
// compat: hami, as the chart runs it in every member that uses the
// profile, and registers it with the member's API server, which then
// gives HAMi's pods that leave out nvidia.com/gpu their defaultGPUNum. It
// returns nil without the profile: the webhook refuses to start there.
func (e *Env) startWebhook(ctx context.Context, m *Member) (*component, error) {
	if e.cfg.Compat != config.CompatHAMi {
		return nil, nil
	}
	configFile, err := e.configFile()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, m.name+"-webhook")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("webhook of %s: %w", m.name, err)
	}
	w, err := cluster.NewTesseraWebhook(dir, configFile)
	if err != nil {
		return nil, fmt.Errorf("webhook of %s: %w", m.name, err)
	}
	c, err := e.runComponent(ctx, m.name+"-webhook", func(ctx context.Context) error {
		defer func() { _ = w.Close() }() // Ports Run did not take.
		return webhookapp.Run(ctx, w.Options)
	})
	if err != nil {
		return nil, errors.Join(err, w.Close())
	}
	fail := func(err error) (*component, error) {
		_ = c.stop()
		return nil, fmt.Errorf("webhook of %s (log %s): %w", m.name, e.logs.path(c.name), err)
	}
	if err := waitHTTP(ctx, c, "http://"+w.Options.HealthBindAddress+"/readyz", e.opts.StartTimeout); err != nil {
		return fail(err)
	}
	if err := w.Register(ctx, m.Client(), e.opts.StartTimeout); err != nil {
		return fail(err)
	}
	return c, nil
}
