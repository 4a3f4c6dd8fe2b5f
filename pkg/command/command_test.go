package command

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
)

type testFlags struct {
	name  string
	valid error
}

func (f *testFlags) AddFlags(fs *pflag.FlagSet) { fs.StringVar(&f.name, "name", "", "a name") }
func (f *testFlags) Validate() error            { return f.valid }

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		valid   error
		wantRun string
		wantErr string
	}{
		{name: "flags are parsed before run", args: []string{"--name=x", "--v=2"}, wantRun: "x"},
		{name: "invalid flags stop before run", args: []string{"--name=y"}, valid: errors.New("bad flags"), wantErr: "bad flags"},
		{name: "arguments are refused", args: []string{"extra"}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &testFlags{valid: tt.valid}
			ran := ""
			cmd := New("daemon", "short", "long", f, func(context.Context) error { ran = f.name; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(new(strings.Builder))
			cmd.SetErr(new(strings.Builder))
			err := cmd.ExecuteContext(t.Context())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || ran != "" {
					t.Fatalf("err = %v, ran %q; want an error containing %q and no run", err, ran, tt.wantErr)
				}
				return
			}
			if err != nil || ran != tt.wantRun {
				t.Fatalf("err = %v, ran with %q; want %q", err, ran, tt.wantRun)
			}
		})
	}
}

// TestServerStartShutdown: a taken port is an error of Start; a started
// server answers until Shutdown.
func TestServerStartShutdown(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	errc := make(chan error, 1)
	if err := (&Server{Name: "clash", Addr: taken.Addr().String()}).Start(t.Context(), errc); err == nil || !strings.Contains(err.Error(), "listen for clash") {
		t.Fatalf("Start on a taken port = %v", err)
	}
	s := &Server{Name: "ok", Addr: "127.0.0.1:0", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
	if err := s.Start(t.Context(), errc); err != nil {
		t.Fatal(err)
	}
	url := "http://" + s.bound
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTeapot {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	Shutdown(klog.Background(), time.Second, []*Server{s, {Name: "never started"}})
	Shutdown(klog.Background(), time.Second, []*Server{s}) // twice is fine
	if resp, err := http.Get(url); err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s after Shutdown: %s", url, resp.Status)
	}
	select {
	case err := <-errc:
		t.Fatalf("serving error after a clean shutdown: %v", err)
	default:
	}
}

// A server given Listen serves what it returns: the port its embedder bound
// before naming it to a peer, which a fresh listen on Addr would find taken.
func TestServerServesTheListenerItIsHanded(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	addr := held.Addr().String()
	handOver := func(_ context.Context, network, address string) (net.Listener, error) {
		if network != "tcp" || address != addr {
			return nil, errors.New("not held: " + network + " " + address)
		}
		return held, nil
	}
	errc := make(chan error, 1)
	tests := []struct {
		name, addr, wantErr string
	}{
		{"held address", addr, ""},
		{"other address", "127.0.0.1:1", "not held: tcp 127.0.0.1:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{Name: "handed", Addr: tt.addr, Listen: handOver,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })}
			err := s.Start(t.Context(), errc)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), "listen for handed") || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Start = %v, want an error naming the server and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer Shutdown(klog.Background(), time.Second, []*Server{s})
			resp, err := http.Get("http://" + addr)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusTeapot || s.bound != addr {
				t.Fatalf("GET %s: %s, bound %s", addr, resp.Status, s.bound)
			}
		})
	}
}
