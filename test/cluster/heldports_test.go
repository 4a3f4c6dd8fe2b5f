package cluster

import (
	"net"
	"strings"
	"testing"
)

func TestHeldPortsHandOverOnceAndCloseTheRest(t *testing.T) {
	var h HeldPorts
	served, err := h.Hold()
	if err != nil {
		t.Fatal(err)
	}
	unclaimed, err := h.Hold()
	if err != nil {
		t.Fatal(err)
	}
	// Held: nobody else can bind it meanwhile.
	if l, err := net.Listen("tcp", served); err == nil {
		_ = l.Close()
		t.Fatalf("listening on held %s succeeded", served)
	}
	l, err := h.Listen(t.Context(), "tcp", served)
	if err != nil || l.Addr().String() != served {
		t.Fatalf("Listen(%s) = %v, %v; want the held listener", served, l, err)
	}
	defer l.Close()
	// Handed over once: a second Listen binds afresh, and the port is
	// still the first server's.
	if again, err := h.Listen(t.Context(), "tcp", served); err == nil || !strings.Contains(err.Error(), "address already in use") {
		if again != nil {
			_ = again.Close()
		}
		t.Fatalf("second Listen(%s) = %v, want address already in use", served, err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	// Close released the one never handed over, and left the served one.
	free, err := net.Listen("tcp", unclaimed)
	if err != nil {
		t.Fatalf("%s after Close: %v", unclaimed, err)
	}
	_ = free.Close()
	if conn, err := net.Dial("tcp", served); err != nil {
		t.Fatalf("the handed-over listener was closed by Close: %v", err)
	} else {
		_ = conn.Close()
	}
}
