package app

import (
	"errors"
	"fmt"
	"net"

	"github.com/spf13/pflag"

	"github.com/tessera-gpu/tessera/pkg/command"
)

// Options are the webhook's flags.
type Options struct {
	// ConfigFile is Tessera's configuration file; it must set compat: hami.
	ConfigFile string
	// BindAddress serves the API server's calls over TLS.
	BindAddress string
	// CertFile and KeyFile are the serving certificate (PEM) and its key;
	// they are read again when they change (a renewed Secret).
	CertFile, KeyFile string
	// HealthBindAddress serves /healthz and /readyz over HTTP; "0" disables it.
	HealthBindAddress string
	// Listen, when set (never by a flag), listens for the servers instead
	// of net.Listen: see command.Server.Listen.
	Listen command.ListenFunc
}

// NewOptions returns the defaults: 9443 is where webhooks conventionally
// listen (controller-runtime's default), which the chart's Service targets.
func NewOptions() *Options {
	return &Options{BindAddress: ":9443", HealthBindAddress: ":9440"}
}

// AddFlags registers the flags on fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.ConfigFile, "config", o.ConfigFile, "Tessera configuration file; it must set compat: hami (the webhook acts on HAMi's resources only).")
	fs.StringVar(&o.BindAddress, "bind-address", o.BindAddress, "host:port serving the admission webhook over TLS (path "+webhookPath+").")
	fs.StringVar(&o.CertFile, "tls-cert-file", o.CertFile, "PEM serving certificate, signed by the CA in the MutatingWebhookConfiguration's caBundle; reloaded when it changes.")
	fs.StringVar(&o.KeyFile, "tls-private-key-file", o.KeyFile, "PEM private key of --tls-cert-file; reloaded when it changes.")
	fs.StringVar(&o.HealthBindAddress, "health-probe-bind-address", o.HealthBindAddress, "host:port serving /healthz and /readyz over HTTP; \"0\" disables it.")
}

// Validate reports every problem with the flags at once.
func (o *Options) Validate() error {
	var errs []error
	if o.ConfigFile == "" {
		errs = append(errs, errors.New("--config is required: the webhook needs compat: hami and hami.defaultGPUNum"))
	}
	if o.CertFile == "" || o.KeyFile == "" {
		errs = append(errs, errors.New("--tls-cert-file and --tls-private-key-file are required: the API server calls webhooks over TLS only"))
	}
	if _, _, err := net.SplitHostPort(o.BindAddress); err != nil {
		errs = append(errs, fmt.Errorf("--bind-address %q: %w", o.BindAddress, err))
	}
	if o.HealthBindAddress != "0" {
		if _, _, err := net.SplitHostPort(o.HealthBindAddress); err != nil {
			errs = append(errs, fmt.Errorf("--health-probe-bind-address %q: %w", o.HealthBindAddress, err))
		}
	}
	return errors.Join(errs...)
}
