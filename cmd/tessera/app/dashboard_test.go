package app

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A kubeconfig that points nowhere: the commands below fail before any
// request, or serve without data.
const nowhereKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: k, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
current-context: c
`

func TestDashboardFlags(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(nowhereKubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"zero refresh", []string{"dashboard", "--refresh", "0s"}, "--refresh must be positive"},
		{"negative refresh", []string{"dashboard", "--refresh", "-1s"}, "--refresh must be positive"},
		{"positional argument", []string{"dashboard", "now"}, "takes no arguments"},
		{"address that cannot be listened on", []string{"dashboard", "--listen", "256.0.0.1:80"}, "--listen 256.0.0.1:80"},
		{"unknown flag", []string{"dashboard", "--port", "80"}, "unknown flag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"--kubeconfig", kc}, tt.args...)
			if code := Main(context.Background(), "tessera", args, &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("exit %d, stderr %q; want a failure mentioning %q", code, stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 8080}, false},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, false},
	}
	for _, tt := range tests {
		if got := isLoopbackAddr(tt.addr); got != tt.want {
			t.Errorf("isLoopbackAddr(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
}
