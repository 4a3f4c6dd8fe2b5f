package deviceplugin

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// podResourcesClient asks the kubelet's PodResources API which pod and
// container hold which device IDs: the kubelet's own record, which the
// device-plugin API never tells a plugin. The connection is made on first
// use and kept; gRPC reconnects by itself after a kubelet restart.
type podResourcesClient struct {
	socket string

	mu     sync.Mutex
	conn   *grpc.ClientConn
	client podresourcesapi.PodResourcesListerClient
}

func (c *podResourcesClient) lister() (podresourcesapi.PodResourcesListerClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		return c.client, nil
	}
	// A restarted kubelet recreates its socket within a second or two: a
	// short reconnect backoff (gRPC's default grows to two minutes) and
	// calls that wait for the connection (WaitForReady, in list) make the
	// first call after a restart wait for the kubelet instead of failing
	// on the last failed dial.
	conn, err := grpc.NewClient("unix://"+c.socket, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return nil, fmt.Errorf("connect to the kubelet's PodResources API at %s: %w", c.socket, err)
	}
	c.conn, c.client = conn, podresourcesapi.NewPodResourcesListerClient(conn)
	return c.client, nil
}

func (c *podResourcesClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn, c.client = nil, nil
	}
}

// kubeletContainer is one container the kubelet knows, with the device IDs
// of our resource it holds (sorted; empty while not allocated).
type kubeletContainer struct {
	namespace, pod, container string
	devices                   []string
}

// listAttempts bounds the Lists of one list call that fail Unavailable.
const listAttempts = 3

// list returns every container of every pod the kubelet lists. List is the
// call every kubelet since 1.20 serves (Get needs a feature gate), and one
// List answers for every allocation in flight at once.
func (c *podResourcesClient) list(ctx context.Context, resource string) ([]kubeletContainer, error) {
	client, err := c.lister()
	if err != nil {
		return nil, err
	}
	// A call sent on a connection the kubelet closed (it restarted) fails
	// with Unavailable at once: WaitForReady only holds calls not sent yet.
	// Asked again, the call waits for the new connection. Without this the
	// first List after a kubelet restart failed, and GetPreferredAllocation
	// fell back to preferring by age (a guess the resolver then refuses).
	var resp *podresourcesapi.ListPodResourcesResponse
	for try := 1; ; try++ {
		resp, err = client.List(ctx, &podresourcesapi.ListPodResourcesRequest{}, grpc.WaitForReady(true))
		if err == nil || status.Code(err) != codes.Unavailable || try == listAttempts || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list pod resources from the kubelet at %s: %w", c.socket, err)
	}
	var out []kubeletContainer
	for _, pr := range resp.GetPodResources() {
		for _, cr := range pr.GetContainers() {
			kc := kubeletContainer{namespace: pr.GetNamespace(), pod: pr.GetName(), container: cr.GetName()}
			for _, d := range cr.GetDevices() {
				if d.GetResourceName() == resource {
					kc.devices = append(kc.devices, d.GetDeviceIds()...)
				}
			}
			slices.Sort(kc.devices)
			out = append(out, kc)
		}
	}
	return out, nil
}
