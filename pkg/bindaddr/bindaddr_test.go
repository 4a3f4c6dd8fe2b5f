package bindaddr

import (
	"net"
	"strings"
	"testing"
)

func TestOn(t *testing.T) {
	tests := []struct {
		name, ip, addr, want string
	}{
		{"no bind address: every interface", "", ":8080", ":8080"},
		{"IPv4 pod IP", "10.0.0.7", ":8080", "10.0.0.7:8080"},
		{"IPv6 pod IP is bracketed", "fd00::7", ":9395", "[fd00::7]:9395"},
		{"an explicit host wins", "10.0.0.7", "127.0.0.1:8080", "127.0.0.1:8080"},
		{"disabled stays disabled", "10.0.0.7", "0", "0"},
		{"not host:port is left for the listener", "10.0.0.7", "8080", "8080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := On(tt.ip, tt.addr)
			if got != tt.want {
				t.Fatalf("On(%q, %q) = %q, want %q", tt.ip, tt.addr, got, tt.want)
			}
			if got != "0" && got != "8080" {
				if _, _, err := net.SplitHostPort(got); err != nil {
					t.Errorf("On(%q, %q) = %q, which a listener cannot take: %v", tt.ip, tt.addr, got, err)
				}
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		ip      string
		wantErr bool
	}{
		{"", false}, {"10.0.0.7", false}, {"fd00::7", false}, {"0.0.0.0", false},
		{"[fd00::7]", true}, {"10.0.0.7:80", true}, {"node-1", true}, {"$(POD_IP)", true},
	}
	for _, tt := range tests {
		err := Check("--bind-address", tt.ip)
		if (err != nil) != tt.wantErr {
			t.Errorf("Check(%q) = %v, want error %t", tt.ip, err, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), "--bind-address") {
			t.Errorf("Check(%q) error %q does not name the flag", tt.ip, err)
		}
	}
}
