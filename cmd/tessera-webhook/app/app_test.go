package app

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/klog/v2"

	"github.com/spf13/pflag"
)

// selfSigned writes a self-signed serving certificate for 127.0.0.1 named
// cn to dir and returns its PEM.
func selfSigned(t *testing.T, dir, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	writeFile(t, filepath.Join(dir, "tls.crt"), certPEM)
	writeFile(t, filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return certPEM
}

// writeFile replaces path, with a modification time that differs from the
// last one even on a coarse clock.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	old, statErr := os.Stat(path)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if statErr == nil {
		later := old.ModTime().Add(time.Second)
		if err := os.Chtimes(path, later, later); err != nil {
			t.Fatal(err)
		}
	}
}

func commonName(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

// TestKeyPairReloads: a renewed pair is served from the next handshake; a
// half-written one keeps the previous pair; a bad pair at start is an error.
func TestKeyPairReloads(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := newKeyPair(certFile, keyFile, klog.Background()); err == nil || !strings.Contains(err.Error(), "load serving certificate") {
		t.Fatalf("missing files: err = %v", err)
	}
	selfSigned(t, dir, "first")
	k, err := newKeyPair(certFile, keyFile, klog.Background())
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name   string
		change func()
		want   string
	}{
		{"unchanged files", func() {}, "first"},
		{"a renewed pair", func() { selfSigned(t, dir, "second") }, "second"},
		{"a half-written renewal keeps the previous pair", func() { writeFile(t, certFile, []byte("-----BEGIN CERT")) }, "second"},
		{"the completed renewal", func() { selfSigned(t, dir, "third") }, "third"},
	}
	for _, s := range steps {
		s.change()
		c, err := k.getCertificate(nil)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := commonName(t, c); got != s.want {
			t.Errorf("%s: serving %q, want %q", s.name, got, s.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr []string
	}{
		{name: "everything given", args: []string{"--config=c.yaml", "--tls-cert-file=c", "--tls-private-key-file=k"}},
		{name: "defaults lack the config and the pair", wantErr: []string{"--config is required", "--tls-cert-file and --tls-private-key-file are required"}},
		{name: "bad addresses", args: []string{"--config=c", "--tls-cert-file=c", "--tls-private-key-file=k", "--bind-address=9443", "--health-probe-bind-address=x"},
			wantErr: []string{"--bind-address \"9443\"", "--health-probe-bind-address \"x\""}},
		{name: "health probes off", args: []string{"--config=c", "--tls-cert-file=c", "--tls-private-key-file=k", "--health-probe-bind-address=0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			o.AddFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := o.Validate()
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want one containing %q", err, w)
				}
			}
		})
	}
}

// TestRunServesOverTLS runs the command's Run with a real certificate and
// sends it a review over TLS, as the API server does; a configuration
// without compat: hami is refused at start.
func TestRunServesOverTLS(t *testing.T) {
	dir := t.TempDir()
	caPEM := selfSigned(t, dir, "webhook")
	plain := filepath.Join(dir, "plain.yaml")
	hami := filepath.Join(dir, "hami.yaml")
	writeFile(t, plain, []byte("node: {splitCount: 4}\n"))
	writeFile(t, hami, []byte("compat: hami\nhami: {defaultGPUNum: 2}\n"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	opts := &Options{ConfigFile: plain, BindAddress: addr, CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), HealthBindAddress: "0"}
	if err := Run(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "only acts under compat \"hami\"") {
		t.Fatalf("Run without compat: hami = %v", err)
	}
	opts.ConfigFile = hami
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	review := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","operation":"CREATE",` +
		`"resource":{"version":"v1","resource":"pods"},"namespace":"ns","object":{"metadata":{"name":"p"},` +
		`"spec":{"containers":[{"name":"c","resources":{"limits":{"nvidia.com/gpumem":"3000"}}}]}}}}`)
	var resp *http.Response
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err = client.Post(fmt.Sprintf("https://%s%s", addr, webhookPath), "application/json", bytes.NewReader(review))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	want := `[{"op":"add","path":"/spec/containers/0/resources/limits/nvidia.com~1gpu","value":"2"}]`
	if out.Response == nil || out.Response.UID != "u1" || !out.Response.Allowed || string(out.Response.Patch) != want {
		t.Fatalf("response %+v, want uid u1 allowed with patch %s", out.Response, want)
	}
}
