package env

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/test/cluster"
)

// estimatorTLSDir is where the environment keeps the estimators' CA and
// key pairs when Options.EstimatorTLS is set.
const estimatorTLSDir = "estimator-pki"

// prepareEstimatorTLS writes the CA and key pairs of mutual TLS between
// karmada-scheduler and the estimators, when asked for.
func (e *Env) prepareEstimatorTLS() error {
	if !e.opts.EstimatorTLS {
		return nil
	}
	files, err := cluster.WriteEstimatorTLS(filepath.Join(e.dir, estimatorTLSDir))
	if err != nil {
		return err
	}
	e.tls = &files
	return nil
}

// EstimatorTLS returns the files of mutual TLS between karmada-scheduler
// and the estimators; ok is false when the estimators serve plain gRPC.
func (e *Env) EstimatorTLS() (files cluster.EstimatorTLS, ok bool) {
	if e.tls == nil {
		return cluster.EstimatorTLS{}, false
	}
	return *e.tls, true
}

// estimatorServerConfig is what an estimator serves gRPC with: the
// tessera-estimator command's --grpc-* flags as the chart sets them with
// estimator.tlsSecret (serving pair, client CA, client certificates
// required), or plain gRPC.
func (e *Env) estimatorServerConfig(port int) *grpcconnection.ServerConfig {
	cfg := &grpcconnection.ServerConfig{ServerPort: port}
	if e.tls != nil {
		cfg.CertFile, cfg.KeyFile, cfg.ClientAuthCAFile = e.tls.ServerCertFile, e.tls.ServerKeyFile, e.tls.CAFile
	}
	return cfg
}

// estimatorCredentials are what the environment's own estimate requests
// dial with: karmada-scheduler's client pair under mutual TLS.
func (e *Env) estimatorCredentials() (credentials.TransportCredentials, error) {
	if e.tls == nil {
		return insecure.NewCredentials(), nil
	}
	cfg, err := EstimatorClientTLS(e.tls.CAFile, e.tls.ClientCertFile, e.tls.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// EstimatorClientTLS is a TLS client configuration that trusts the CA in
// caFile and presents the pair in certFile and keyFile; with both empty it
// presents no client certificate.
func EstimatorClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("estimator client credentials: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("estimator client credentials: %s holds no PEM certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	switch {
	case certFile != "" && keyFile != "":
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("estimator client credentials: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case certFile != "" || keyFile != "":
		return nil, errors.New("estimator client credentials: a client certificate needs its key and the key its certificate")
	}
	return cfg, nil
}

// TesseraEstimateWith asks the estimator at addr, over Karmada's Estimator
// gRPC service and with creds, how many replicas asking for request fit in
// cluster. The error of a refused connection keeps its gRPC status.
func TesseraEstimateWith(ctx context.Context, addr, cluster string, request corev1.ResourceList, creds credentials.TransportCredentials) (int32, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return 0, fmt.Errorf("dial Tessera estimator of %s at %s: %w", cluster, addr, err)
	}
	defer conn.Close()
	req := &pb.MaxAvailableReplicasRequest{Cluster: cluster, ReplicaRequirements: &pb.ReplicaRequirements{}}
	if err := req.ReplicaRequirements.SetResourceRequest(request); err != nil {
		return 0, fmt.Errorf("encode request for the estimator of %s: %w", cluster, err)
	}
	ctx, cancel := context.WithTimeout(ctx, estimateTimeout)
	defer cancel()
	resp, err := estimatorservice.NewEstimatorClient(conn).MaxAvailableReplicas(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("ask Tessera estimator of %s at %s: %w", cluster, addr, err)
	}
	return resp.MaxReplicas, nil
}
