package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestClusterPKI(t *testing.T) {
	p, err := newClusterPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := func(a *authority) *x509.CertPool {
		pool, err := certPool(a.certPEM)
		if err != nil {
			t.Fatal(err)
		}
		return pool
	}
	tests := []struct {
		name     string
		certFile string
		certPEM  []byte
		roots    *x509.CertPool
		dnsName  string
		usage    x509.ExtKeyUsage
		wantCN   string
		wantOrg  string
	}{
		{name: "apiserver serves 127.0.0.1", certFile: p.servingCert, roots: roots(p.ca), dnsName: "127.0.0.1", usage: x509.ExtKeyUsageServerAuth, wantCN: "kube-apiserver"},
		{name: "apiserver serves kubernetes.default.svc", certFile: p.servingCert, roots: roots(p.ca), dnsName: "kubernetes.default.svc", usage: x509.ExtKeyUsageServerAuth, wantCN: "kube-apiserver"},
		{name: "components serve 127.0.0.1", certFile: p.componentCert, roots: roots(p.ca), dnsName: "127.0.0.1", usage: x509.ExtKeyUsageServerAuth},
		{name: "front proxy client", certFile: p.proxyClientCert, roots: roots(p.frontProxyCA), usage: x509.ExtKeyUsageClientAuth, wantCN: frontProxyClientName},
		{name: "admin is in system:masters", certPEM: p.admin.certPEM, roots: roots(p.ca), usage: x509.ExtKeyUsageClientAuth, wantCN: adminUser, wantOrg: mastersGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.certPEM
			if tc.certFile != "" {
				if data, err = os.ReadFile(tc.certFile); err != nil {
					t.Fatal(err)
				}
			}
			block, _ := pem.Decode(data)
			if block == nil {
				t.Fatal("no PEM block")
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: tc.roots, DNSName: tc.dnsName, KeyUsages: []x509.ExtKeyUsage{tc.usage}}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if tc.wantCN != "" && cert.Subject.CommonName != tc.wantCN {
				t.Errorf("CN %q, want %q", cert.Subject.CommonName, tc.wantCN)
			}
			if tc.wantOrg != "" && (len(cert.Subject.Organization) != 1 || cert.Subject.Organization[0] != tc.wantOrg) {
				t.Errorf("O %v, want [%s]", cert.Subject.Organization, tc.wantOrg)
			}
		})
	}
	// The front proxy's client must not be trusted as an ordinary client.
	block, _ := pem.Decode(mustRead(t, p.proxyClientCert))
	cert, _ := x509.ParseCertificate(block.Bytes)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots(p.ca), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("front-proxy client certificate verifies against the cluster CA; it must only chain to the front-proxy CA")
	}
}

func TestSchedulerConfig(t *testing.T) {
	tests := []struct {
		name    string
		user    string
		wantErr string
		check   func(t *testing.T, doc map[string]any)
	}{
		{name: "empty gets the defaults", user: ""},
		{name: "null document", user: "null"},
		{
			name: "extender and profile kept, leader election forced off",
			user: "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection: {leaderElect: true, resourceName: x}\n" +
				"profiles: [{schedulerName: s}]\nextenders: [{urlPrefix: 'http://127.0.0.1:1', filterVerb: filter}]\n",
			check: func(t *testing.T, doc map[string]any) {
				if doc["extenders"].([]any)[0].(map[string]any)["urlPrefix"] != "http://127.0.0.1:1" {
					t.Errorf("extender lost: %v", doc["extenders"])
				}
				if doc["leaderElection"].(map[string]any)["resourceName"] != "x" {
					t.Errorf("other leaderElection fields lost: %v", doc["leaderElection"])
				}
			},
		},
		{name: "wrong kind", user: "kind: KubeletConfiguration", wantErr: `kind "KubeletConfiguration"`},
		{name: "wrong apiVersion", user: "apiVersion: kubescheduler.config.k8s.io/v1beta3", wantErr: "apiVersion"},
		{name: "kind not a string", user: "kind: [a]", wantErr: "kind is a []interface {}"},
		{name: "not a mapping", user: "- a\n- b", wantErr: "parse KubeSchedulerConfiguration"},
		{name: "clientConnection not a mapping", user: "clientConnection: 3", wantErr: "clientConnection is a float64"},
		{name: "broken YAML", user: "a: [", wantErr: "parse KubeSchedulerConfiguration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := schedulerConfig(tc.user, "/k/config")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			doc := map[string]any{}
			if err := yaml.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			if doc["apiVersion"] != schedulerConfigAPIVersion || doc["kind"] != schedulerConfigKind {
				t.Errorf("apiVersion/kind %v/%v", doc["apiVersion"], doc["kind"])
			}
			if doc["clientConnection"].(map[string]any)["kubeconfig"] != "/k/config" {
				t.Errorf("clientConnection %v", doc["clientConnection"])
			}
			if doc["leaderElection"].(map[string]any)["leaderElect"] != false {
				t.Errorf("leaderElection %v", doc["leaderElection"])
			}
			if tc.check != nil {
				tc.check(t, doc)
			}
		})
	}
}

func TestParseBuildOutput(t *testing.T) {
	out := "ETCD_BIN=/c/etcd/bin\nKUBERNETES_BIN=/c/k8s/bin\nKARMADA_BIN=/c/karmada/bin\nKARMADA_CRDS=/c/karmada/crds\nNEW_THING=/x\n"
	tests := []struct {
		name    string
		out     string
		want    []Component
		expect  Paths
		wantErr bool
	}{
		{name: "all", out: out, want: []Component{ComponentEtcd, ComponentKubernetes, ComponentKarmada}, expect: Paths{Etcd: "/c/etcd/bin", Kubernetes: "/c/k8s/bin", Karmada: "/c/karmada/bin", KarmadaCRDs: "/c/karmada/crds"}},
		{name: "only what was asked", out: out, want: []Component{ComponentKubernetes}, expect: Paths{Kubernetes: "/c/k8s/bin"}},
		{name: "missing line", out: "ETCD_BIN=/c/etcd/bin\n", want: []Component{ComponentKarmada}, wantErr: true},
		{name: "karmada without CRDs", out: "KARMADA_BIN=/c/karmada/bin\n", want: []Component{ComponentKarmada}, wantErr: true},
		{name: "relative dir", out: "ETCD_BIN=bin\n", want: []Component{ComponentEtcd}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseBuildOutput(tc.out, tc.want)
			if (err != nil) != tc.wantErr || got != tc.expect {
				t.Fatalf("got %+v, %v; want %+v, error %v", got, err, tc.expect, tc.wantErr)
			}
		})
	}
}

func TestBinariesRejectsUnknownComponent(t *testing.T) {
	if _, err := Binaries(t.Context(), "kubelet"); err == nil || !strings.Contains(err.Error(), `unknown component "kubelet"`) {
		t.Fatalf("error %v, want one naming the unknown component", err)
	}
}

func TestProcessStop(t *testing.T) {
	tests := []struct {
		name   string
		script string
		grace  time.Duration
		max    time.Duration // stop must not take (much) longer
	}{
		// The shell's background child is in its group and must go too.
		{name: "group ends on SIGTERM", script: "sleep 300 & sleep 300", grace: 10 * time.Second, max: 5 * time.Second},
		{name: "SIGTERM ignored, SIGKILL after grace", script: `trap "" TERM; sleep 300 & wait`, grace: 300 * time.Millisecond, max: 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startProcess("sh", filepath.Join(t.TempDir(), "sh.log"), "/bin/sh", []string{"-c", tc.script})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // let the shell fork its child
			if !p.alive() {
				t.Fatalf("process group %d not seen alive before stop", p.pid)
			}
			start := time.Now()
			p.stop(tc.grace)
			if took := time.Since(start); took > tc.max {
				t.Errorf("stop took %s", took)
			}
			if p.alive() {
				t.Errorf("process group %d still alive after stop", p.pid)
			}
		})
	}
}

func TestWaitReadyFailures(t *testing.T) {
	tests := []struct {
		name      string
		script    string
		timeout   time.Duration
		want      []string
		portInUse bool
	}{
		{name: "exits", script: "echo first; echo boom-$((1+1)); exit 3", timeout: time.Minute, want: []string{"demo exited before it was ready", "exit status 3", "boom-2", "demo.log"}},
		{name: "port taken", script: "printf 'listen tcp: bind: address already %s\\n' 'in use'; exit 1", timeout: time.Minute, want: []string{"address already in use"}, portInUse: true},
		{name: "never ready", script: "echo wait-$((2+3)); sleep 300", timeout: time.Second, want: []string{"demo not ready at http://127.0.0.1:1/healthz after", "wait-5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := startProcess("demo", filepath.Join(t.TempDir(), "demo.log"), "/bin/sh", []string{"-c", tc.script})
			if err != nil {
				t.Fatal(err)
			}
			defer p.stop(time.Second)
			client, err := probeClient(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = waitReady(context.Background(), p, client, "http://127.0.0.1:1/healthz", tc.timeout)
			if err == nil {
				t.Fatal("waitReady succeeded")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
			if errors.Is(err, errPortInUse) != tc.portInUse {
				t.Errorf("errors.Is(err, errPortInUse) = %v, want %v", !tc.portInUse, tc.portInUse)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		stat      string
		wantState string
		wantPgid  int
		wantOK    bool
	}{
		{stat: "42 (sleep) S 1 40 40 0 -1", wantState: "S", wantPgid: 40, wantOK: true},
		{stat: "42 (a (b) c) Z 1 7 7 0", wantState: "Z", wantPgid: 7, wantOK: true},
		{stat: "42 (x) R", wantOK: false},
		{stat: "garbage", wantOK: false},
		{stat: "42 (x) S 1 notanumber 3", wantOK: false},
	}
	for _, tc := range tests {
		state, pgid, ok := parseProcStat(tc.stat)
		if ok != tc.wantOK || (ok && (state != tc.wantState || pgid != tc.wantPgid)) {
			t.Errorf("parseProcStat(%q) = %q, %d, %v; want %q, %d, %v", tc.stat, state, pgid, ok, tc.wantState, tc.wantPgid, tc.wantOK)
		}
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want 5 distinct positive ports", ports)
		}
		seen[p] = true
	}
}

func TestFileTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(fileTail(path, 3), "\n")
	if len(lines) != 3 || len(lines[2]) != 99 || len(lines[0]) != 97 {
		t.Fatalf("tail %q", lines)
	}
	if got := fileTail(filepath.Join(t.TempDir(), "missing"), 3); !strings.Contains(got, "cannot read") {
		t.Fatalf("tail of a missing file: %q", got)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestWriteEstimatorTLS: the estimators' serving certificate is valid for
// the address karmada-scheduler dials (127.0.0.1) under the CA, the
// scheduler's client certificate is valid for client authentication under
// it, and a second call's CA trusts neither.
func TestWriteEstimatorTLS(t *testing.T) {
	files, err := WriteEstimatorTLS(filepath.Join(t.TempDir(), "pki"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := WriteEstimatorTLS(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		ca, cert string
		opts     x509.VerifyOptions
		ok       bool
	}{
		{"serving pair for 127.0.0.1", files.CAFile, files.ServerCertFile, x509.VerifyOptions{DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, true},
		{"serving pair is no client", files.CAFile, files.ServerCertFile, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false},
		{"client pair", files.CAFile, files.ClientCertFile, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, true},
		{"client pair serves nothing", files.CAFile, files.ClientCertFile, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, false},
		{"another CA's client pair", files.CAFile, other.ClientCertFile, x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caPEM, err := os.ReadFile(tt.ca)
			if err != nil {
				t.Fatal(err)
			}
			if tt.opts.Roots, err = certPool(caPEM); err != nil {
				t.Fatal(err)
			}
			pemBytes, err := os.ReadFile(tt.cert)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(pemBytes)
			if block == nil {
				t.Fatalf("%s holds no PEM block", tt.cert)
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cert.Verify(tt.opts); (err == nil) != tt.ok {
				t.Errorf("verify %s: %v, want ok=%t", tt.cert, err, tt.ok)
			}
		})
	}
	for _, f := range []string{files.ServerKeyFile, files.ClientKeyFile} {
		info, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, info.Mode().Perm())
		}
	}
}
