package informerstop

import (
	"testing"
	"time"

	"k8s.io/klog/v2"
)

// blockingFactory's Shutdown returns once release is closed.
type blockingFactory struct{ release chan struct{} }

func (f blockingFactory) Shutdown() { <-f.release }

func TestShutdown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		blocked bool
		want    bool
	}{
		{"informers stop", false, true},
		{"a reflector waits out its back-off", true, false},
	} {
		f := blockingFactory{release: make(chan struct{})}
		if !tc.blocked {
			close(f.release)
		}
		done := make(chan bool, 1)
		go func() { done <- Shutdown(klog.Background(), "test", f, 50*time.Millisecond) }()
		select {
		case got := <-done:
			if got != tc.want {
				t.Errorf("%s: Shutdown = %t, want %t", tc.name, got, tc.want)
			}
		case <-time.After(time.Minute):
			t.Fatalf("%s: Shutdown did not return", tc.name)
		}
		if tc.blocked {
			close(f.release) // The back-off fires; the leftover goroutine ends.
		}
	}
}
