package cluster

import (
	"fmt"
	"os"
)

// EstimatorTLS is mutual TLS between karmada-scheduler and the member
// clusters' estimators, laid out as Karmada's own installers lay it out
// (the karmada-scheduler-estimator-cert Secret): one CA that signs both
// sides, a serving pair for the estimators and a client pair for
// karmada-scheduler. Every path is a PEM file.
type EstimatorTLS struct {
	// CAFile is the CA certificate: the estimators verify karmada-scheduler's
	// client certificate with it (--grpc-client-ca-file), karmada-scheduler
	// the estimators' serving certificate (--scheduler-estimator-ca-file).
	CAFile string
	// ServerCertFile and ServerKeyFile are the estimators' serving pair
	// (--grpc-auth-cert-file, --grpc-auth-key-file), valid for 127.0.0.1:
	// the address every estimator Service of a test Karmada names
	// (SetEstimator), which is the name karmada-scheduler verifies.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are karmada-scheduler's client pair
	// (--scheduler-estimator-cert-file, --scheduler-estimator-key-file).
	ClientCertFile, ClientKeyFile string
}

// estimatorTLSDirMode keeps the private keys readable by this user only.
const estimatorTLSDirMode = 0o700

// WriteEstimatorTLS makes a fresh CA and both pairs and writes them under
// dir (created if missing). Each call makes a CA of its own, so a second
// call gives a client pair the first CA does not trust.
func WriteEstimatorTLS(dir string) (EstimatorTLS, error) {
	if err := os.MkdirAll(dir, estimatorTLSDirMode); err != nil {
		return EstimatorTLS{}, fmt.Errorf("estimator TLS: create %s: %w", dir, err)
	}
	ca, err := newAuthority("tessera-estimator-ca")
	if err != nil {
		return EstimatorTLS{}, fmt.Errorf("estimator TLS: %w", err)
	}
	var files EstimatorTLS
	if files.CAFile, err = writeCA(dir, "ca", ca); err != nil {
		return EstimatorTLS{}, fmt.Errorf("estimator TLS: %w", err)
	}
	for _, pair := range []struct {
		name      string
		req       certRequest
		cert, key *string
	}{
		{"estimator-server", certRequest{commonName: "karmada-scheduler-estimator", ips: loopbackIPs(), dnsNames: []string{"localhost"}, server: true},
			&files.ServerCertFile, &files.ServerKeyFile},
		{"scheduler-client", certRequest{commonName: "karmada-scheduler", client: true},
			&files.ClientCertFile, &files.ClientKeyFile},
	} {
		issued, err := ca.issue(pair.req)
		if err != nil {
			return EstimatorTLS{}, fmt.Errorf("estimator TLS: %w", err)
		}
		if *pair.cert, *pair.key, err = issued.write(dir, pair.name); err != nil {
			return EstimatorTLS{}, fmt.Errorf("estimator TLS: %w", err)
		}
	}
	return files, nil
}

// SchedulerArgs are karmada-scheduler's own estimator client flags for
// these files (Karmada v1.18.0, cmd/scheduler/app/options): it verifies
// the estimators against the CA and presents its client pair.
func (f EstimatorTLS) SchedulerArgs() []string {
	return []string{
		"--scheduler-estimator-ca-file=" + f.CAFile,
		"--scheduler-estimator-cert-file=" + f.ClientCertFile,
		"--scheduler-estimator-key-file=" + f.ClientKeyFile,
	}
}
