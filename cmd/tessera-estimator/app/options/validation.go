package options

import (
	"net"
	"strconv"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tessera-gpu/tessera/pkg/bindaddr"
	"github.com/tessera-gpu/tessera/pkg/config"
)

// Validate checks every flag (Karmada's own checks included) and loads
// the configuration file. It returns the configuration to run with.
func (o *Options) Validate() (config.Config, field.ErrorList) {
	errs := o.Karmada.Validate()
	path := field.NewPath("Options")
	k := o.Karmada
	if k.Parallelism < 0 {
		errs = append(errs, field.Invalid(path.Child("Parallelism"), k.Parallelism, "must not be negative (0 means 16)"))
	}
	if k.ClusterAPIQPS <= 0 {
		errs = append(errs, field.Invalid(path.Child("ClusterAPIQPS"), k.ClusterAPIQPS, "must be positive"))
	}
	if k.ClusterAPIBurst <= 0 {
		errs = append(errs, field.Invalid(path.Child("ClusterAPIBurst"), k.ClusterAPIBurst, "must be positive"))
	}
	if (k.GrpcAuthCertFile == "") != (k.GrpcAuthKeyFile == "") {
		errs = append(errs, field.Invalid(path.Child("GrpcAuthKeyFile"), k.GrpcAuthKeyFile, "--grpc-auth-cert-file and --grpc-auth-key-file go together"))
	}
	for name, addr := range map[string]string{"MetricsBindAddress": k.MetricsBindAddress, "HealthProbeBindAddress": k.HealthProbeBindAddress} {
		if err := checkBindAddress(addr); err != "" {
			errs = append(errs, field.Invalid(path.Child(name), addr, err))
		}
	}
	if o.GRPCBindAddress != "" && net.ParseIP(o.GRPCBindAddress) == nil {
		errs = append(errs, field.Invalid(path.Child("GRPCBindAddress"), o.GRPCBindAddress, "must be an IP address (the port is --server-port), or empty for every interface"))
	}
	if err := bindaddr.Check("--bind-address", o.BindAddress); err != nil {
		errs = append(errs, field.Invalid(path.Child("BindAddress"), o.BindAddress, err.Error()))
	}
	if o.APIProbeInterval <= 0 {
		errs = append(errs, field.Invalid(path.Child("APIProbeInterval"), o.APIProbeInterval.String(), "must be positive"))
	}
	if o.APIProbeTimeout <= 0 {
		errs = append(errs, field.Invalid(path.Child("APIProbeTimeout"), o.APIProbeTimeout.String(), "must be positive"))
	}
	cfg := config.Default()
	if o.ConfigFile != "" {
		loaded, err := config.Load(o.ConfigFile)
		if err != nil {
			errs = append(errs, field.Invalid(path.Child("ConfigFile"), o.ConfigFile, err.Error()))
		} else {
			cfg = loaded
		}
	}
	return cfg, errs
}

// GRPCAddress is where the gRPC server listens: --grpc-bind-address (or
// else --bind-address) and --server-port.
func (o *Options) GRPCAddress() string {
	host := o.GRPCBindAddress
	if host == "" {
		host = o.BindAddress
	}
	return net.JoinHostPort(host, strconv.Itoa(o.Karmada.ServerPort))
}

// checkBindAddress accepts "0" (disabled) or host:port.
func checkBindAddress(addr string) string {
	if addr == "0" {
		return ""
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "must be host:port, :port or 0 to disable"
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "port must be a number between 0 and 65535"
	}
	return ""
}
