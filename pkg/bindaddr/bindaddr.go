// Package bindaddr puts a component's TCP listeners on one IP address: the
// --bind-address flag of the node agent and the estimator. Their Helm chart
// sets it to the pod's IP when the pod uses the host's network, so that the
// health, metrics and estimator ports are not open on every interface of
// the node (a management network, a public address, the node's loopback
// that every host-network pod shares).
package bindaddr

import (
	"fmt"
	"net"
)

// Check validates a --bind-address value: empty (every interface) or one IP
// address, IPv4 or IPv6, without brackets or port. flag names the flag in
// the error.
func Check(flag, ip string) error {
	if ip != "" && net.ParseIP(ip) == nil {
		return fmt.Errorf("%s %q is not an IP address (leave it empty for every interface)", flag, ip)
	}
	return nil
}

// On returns the listen address addr ("host:port", ":port", or "0" for
// disabled) placed on ip: an address that names no host gets ip as its
// host, bracketed when ip is IPv6. An empty ip, a disabled address, an
// address that names its own host, and one that is not host:port (left for
// the listener's own error) are returned as they are.
func On(ip, addr string) string {
	if ip == "" || addr == "0" {
		return addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr
	}
	return net.JoinHostPort(ip, port)
}
