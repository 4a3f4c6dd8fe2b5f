package deviceplugin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// failingPodResources is a kubelet's PodResources server whose first
// failures Lists fail with code: Unavailable is what a List sent on the
// connection of a kubelet that just restarted gets (the randomized test
// met it: a GetPreferredAllocation right after a kubelet restart preferred
// by age, and the resolver refused the guess).
type failingPodResources struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	code     codes.Code
	failures int

	mu    sync.Mutex
	calls int
}

func (s *failingPodResources) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failures {
		return nil, status.Error(s.code, "error reading from server: EOF")
	}
	return &podresourcesapi.ListPodResourcesResponse{PodResources: []*podresourcesapi.PodResources{{
		Name: "p", Namespace: "default", Containers: []*podresourcesapi.ContainerResources{{
			Name: "c", Devices: []*podresourcesapi.ContainerDevices{{ResourceName: testResource, DeviceIds: []string{"s1", "s0"}}},
		}},
	}}}, nil
}

func TestPodResourcesListAsksAgainAfterUnavailable(t *testing.T) {
	tests := []struct {
		name      string
		code      codes.Code
		failures  int
		wantCalls int
		wantErr   bool
	}{
		{"answered at once", codes.Unavailable, 0, 1, false},
		{"one broken connection", codes.Unavailable, 1, 2, false},
		{"unavailable every time", codes.Unavailable, listAttempts, listAttempts, true},
		{"other errors are not retried", codes.Internal, 1, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "pr") // Unix socket paths are short.
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			socket := filepath.Join(dir, "pr.sock")
			lis, err := net.Listen("unix", socket)
			if err != nil {
				t.Fatal(err)
			}
			server := &failingPodResources{code: tt.code, failures: tt.failures}
			srv := grpc.NewServer()
			podresourcesapi.RegisterPodResourcesListerServer(srv, server)
			go func() { _ = srv.Serve(lis) }()
			t.Cleanup(srv.Stop)
			client := &podResourcesClient{socket: socket}
			t.Cleanup(client.close)

			got, err := client.list(t.Context(), testResource)
			server.mu.Lock()
			calls := server.calls
			server.mu.Unlock()
			if calls != tt.wantCalls {
				t.Errorf("%d Lists, want %d", calls, tt.wantCalls)
			}
			if tt.wantErr {
				if err == nil || status.Code(err) != tt.code {
					t.Fatalf("list = %v, %v; want an error with code %v", got, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].pod != "p" || got[0].container != "c" || !slices.Equal(got[0].devices, []string{"s0", "s1"}) {
				t.Errorf("list = %+v, want container default/p/c holding s0,s1", got)
			}
		})
	}
}
