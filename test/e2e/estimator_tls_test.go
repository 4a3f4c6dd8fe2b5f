package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tessera-gpu/tessera/test/cluster"
	"github.com/tessera-gpu/tessera/test/e2e/env"
)

// TestEstimatorMutualTLS runs the headline scenario with the estimators
// serving gRPC only to clients whose certificate the estimators' CA signed
// (--grpc-auth-cert-file, --grpc-auth-key-file, --grpc-client-ca-file, as
// the chart sets them from estimator.tlsSecret), and karmada-scheduler
// started with Karmada's own estimator client flags
// (--scheduler-estimator-ca-file, -cert-file, -key-file).
//
// The placement proves that karmada-scheduler got the busy member's answer
// over mutual TLS: Karmada's general estimate alone is 6 replicas there
// and 4 in the idle member, and would send part of the workload to the
// busy member's fragmented GPUs; only Tessera's 0 sends all 4 to the idle
// member. Then clients without a certificate the CA signed are refused.
func TestEstimatorMutualTLS(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	e := startHeadlineWith(ctx, t, env.Options{Estimator: env.EstimatorTessera, EstimatorTLS: true})
	files, ok := e.EstimatorTLS()
	if !ok {
		t.Fatal("the environment runs its estimators without TLS")
	}

	if !t.Run("karmada-scheduler places by Tessera's answers over mutual TLS", func(t *testing.T) {
		// The headline's first step, every estimate asked with
		// karmada-scheduler's client pair.
		headlineLandsInIdle(ctx, t, e, env.HeadlineWorkload())
		// karmada-scheduler says so too: it logs each estimator connection
		// it established (Karmada's pkg/estimator/client).
		schedulerLog := filepath.Join(e.Karmada().Dir(), "karmada-scheduler.log")
		logged, err := os.ReadFile(schedulerLog)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range e.Members() {
			want := fmt.Sprintf("Connection with estimator server(%s) of cluster(%s) has been established", m.EstimatorAddress(), m.Name())
			if !strings.Contains(string(logged), want) {
				t.Errorf("%s does not say %q", schedulerLog, want)
			}
		}
	}) {
		t.FailNow()
	}

	t.Run("clients without a certificate of the CA are refused", func(t *testing.T) {
		foreign, err := cluster.WriteEstimatorTLS(filepath.Join(e.Dir(), "foreign-pki"))
		if err != nil {
			t.Fatal(err)
		}
		tlsConfig := func(caFile, certFile, keyFile string) *tls.Config {
			cfg, err := env.EstimatorClientTLS(caFile, certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
		addr := e.Member(env.BusyMember).EstimatorAddress()
		request := env.HeadlineWorkload().Request.Resources(e.Config().Resources)
		tests := []struct {
			name string
			// tls is the client's TLS configuration; nil dials plain gRPC.
			tls *tls.Config
			// wantAlert is the TLS alert the estimator refuses the
			// handshake with.
			wantAlert string
		}{
			{"TLS without a client certificate", tlsConfig(files.CAFile, "", ""), "tls: certificate required"},
			{"a client certificate of another CA", tlsConfig(files.CAFile, foreign.ClientCertFile, foreign.ClientKeyFile), "tls: unknown certificate authority"},
			{"plain gRPC", nil, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				creds := insecure.NewCredentials()
				if tt.tls != nil {
					creds = credentials.NewTLS(tt.tls)
				}
				n, err := env.TesseraEstimateWith(ctx, addr, env.BusyMember, request, creds)
				if err == nil {
					t.Fatalf("the estimator answered %d", n)
				}
				if st, _ := status.FromError(err); st.Code() != codes.Unavailable {
					t.Errorf("refused with %v (code %s), want %s", err, st.Code(), codes.Unavailable)
				}
				t.Logf("refused: %v", err)
				if tt.tls != nil {
					// Why, deterministically: under TLS 1.3 the client's
					// handshake ends before the server checks its
					// certificate, so a gRPC client may see its first write
					// fail before it reads the alert; a raw client that only
					// reads sees the alert itself.
					if got := handshakeAlert(t, addr, tt.tls); !strings.Contains(got, tt.wantAlert) {
						t.Errorf("the estimator ended the handshake with %q, want %q", got, tt.wantAlert)
					}
				}
			})
		}
		// The same request with the CA's client pair is answered.
		if got := estimates(ctx, t, e, env.BusyMember); got.TesseraErr != nil {
			t.Errorf("with karmada-scheduler's client pair: %v", got.TesseraErr)
		}
	})

	e.Stop()
	if err := e.StopErr(); err != nil {
		t.Errorf("teardown: %v", err)
	}
}

// handshakeAlert dials addr with cfg and reads until the server ends the
// connection, and returns that error's text ("" if the server sent data).
func handshakeAlert(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return err.Error()
	}
	defer conn.Close()
	if err := conn.SetReadDeadline(time.Now().Add(estimateDeadline)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return err.Error()
	}
	return ""
}

// estimateDeadline bounds the raw client's wait for the server's verdict.
const estimateDeadline = 10 * time.Second
