package server

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/estimator/pb"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

func smallCluster() ([]*corev1.Node, []*corev1.Pod) {
	spec := tc.NodeSpec{Name: "good", MilliCPU: 8000, MemoryBytes: 64 << 30, Pods: 110,
		GPUs: []vgpu.GPU{tc.GPU("good", 0), tc.GPU("good", 1)}}
	bad := tc.NodeSpec{Name: "broken-inventory", MilliCPU: 8000, MemoryBytes: 64 << 30, Pods: 110,
		GPUs: []vgpu.GPU{tc.GPU("broken-inventory", 0)}, RawInventory: `{"version":"v7","gpus":[]}`}
	nodes := []*corev1.Node{tc.Node(spec), tc.Node(bad)}
	pods := []*corev1.Pod{tc.GPUPod("used", "good", 1000, 1<<30, tc.Share{GPU: spec.GPUs[0], MemoryMiB: 61440, Cores: 50})}
	return nodes, pods
}

// syncLog collects klog output written from several goroutines.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestBadInput sends malformed requests and clusters with bad data through
// Karmada's client: every answer is a number or a clear gRPC error.
func TestBadInput(t *testing.T) {
	logs := &syncLog{}
	klog.LogToStderr(false)
	klog.SetOutput(logs)
	t.Cleanup(func() { klog.SetOutput(nil); klog.LogToStderr(true) })

	nodes, pods := smallCluster()
	e := startEnv(t, objects(nodes, pods)...)
	tests := []struct {
		name    string
		rl      corev1.ResourceList
		want    int32
		wantErr string
	}{
		// good: GPU 0 has 20 GiB and 50% left, GPU 1 is free; the broken node counts as zero.
		{name: "valid request", rl: quantities(resVGPU, "1", resMemory, "20480"), want: 5},
		{name: "unknown extended resource no node has", rl: quantities(resVGPU, "1", resMemory, "1024", "example.com/fpga", "1"), want: 0},
		{name: "unknown unprefixed name is ignored as Karmada ignores it", rl: quantities(resVGPU, "1", resMemory, "20480", "bogus", "3"), want: 5},
		{name: "zero vGPUs leaves it to the stock plugins", rl: quantities(resVGPU, "0", "cpu", "1"), want: 7 + 8},
		{name: "zero GPU memory", rl: quantities(resVGPU, "1", resMemory, "0"), wantErr: "InvalidArgument"},
		{name: "negative vGPUs", rl: quantities(resVGPU, "-2"), wantErr: "InvalidArgument"},
		{name: "negative cpu", rl: quantities(resVGPU, "1", "cpu", "-1"), wantErr: "InvalidArgument"},
		{name: "fractional vGPUs", rl: quantities(resVGPU, "0.5"), wantErr: "whole number"},
		{name: "cores above 100%", rl: quantities(resVGPU, "1", resCores, "101"), wantErr: "InvalidArgument"},
		{name: "memory without vGPU", rl: quantities(resMemory, "1024"), wantErr: "without any vGPU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.maxReplicas(t, tt.rl, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %d, %v; want an error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}

	t.Run("a node selector that matches nothing", func(t *testing.T) {
		got, err := e.maxReplicas(t, quantities(resVGPU, "1"), &workv1alpha2.NodeClaim{NodeSelector: map[string]string{"zone": "nowhere"}})
		if err != nil || got != 0 {
			t.Errorf("got %d, %v; want 0", got, err)
		}
	})
	t.Run("another cluster's request", func(t *testing.T) {
		_, err := e.rpc.MaxAvailableReplicas(context.Background(), &pb.MaxAvailableReplicasRequest{Cluster: "elsewhere"})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("err = %v, want InvalidArgument", err)
		}
	})
	t.Run("undecodable resource bytes", func(t *testing.T) {
		_, err := e.rpc.MaxAvailableReplicas(context.Background(), &pb.MaxAvailableReplicasRequest{
			Cluster: testCluster, ReplicaRequirements: &pb.ReplicaRequirements{ResourceRequestBytes: map[string][]byte{resVGPU: {0xff, 0x01}}},
		})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("err = %v, want InvalidArgument", err)
		}
	})
	t.Run("GetUnschedulableReplicas without a workload", func(t *testing.T) {
		_, err := e.rpc.GetUnschedulableReplicas(context.Background(), &pb.UnschedulableReplicasRequest{Cluster: testCluster})
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("err = %v, want InvalidArgument", err)
		}
	})
	t.Run("GetUnschedulableReplicas of a missing deployment", func(t *testing.T) {
		_, err := e.rpc.GetUnschedulableReplicas(context.Background(), &pb.UnschedulableReplicasRequest{
			Cluster: testCluster, Resource: &pb.ObjectReference{ApiVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "absent"},
		})
		if status.Code(err) != codes.NotFound {
			t.Errorf("err = %v, want NotFound", err)
		}
	})

	// The broken node is counted in the metric and named in the log.
	if got := metricValue(t, e, "tessera_estimator_nodes_skipped"); got != 1 {
		t.Errorf("tessera_estimator_nodes_skipped = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "broken-inventory") {
		t.Errorf("no log line names the node with the broken inventory; log:\n%s", logs.String())
	}
}

// TestAnswersWhileAPIServerUnreachable cuts the member's API server off
// after the caches synced: the server keeps answering from the last state,
// and the state's age grows in the metric.
func TestAnswersWhileAPIServerUnreachable(t *testing.T) {
	nodes, pods := smallCluster()
	e := startEnv(t, objects(nodes, pods)...)
	rl := quantities(resVGPU, "1", resMemory, "20480")
	before, err := e.maxReplicas(t, rl, nil)
	if err != nil {
		t.Fatalf("before the cut: %v", err)
	}
	unreachable := errors.New("dial tcp 10.0.0.1:6443: connect: connection refused")
	e.kube.PrependReactor("*", "*", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, unreachable })
	e.kube.PrependWatchReactor("*", func(k8stesting.Action) (bool, watch.Interface, error) { return true, nil, unreachable })

	deadline := time.Now().Add(10 * time.Second)
	for e.server.StateAge() < 200*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("state age stayed at %v while the API server was unreachable", e.server.StateAge())
		}
		time.Sleep(20 * time.Millisecond)
	}
	after, err := e.maxReplicas(t, rl, nil)
	if err != nil || after != before {
		t.Errorf("while unreachable: %d, %v; want the last answer %d", after, err, before)
	}
	if age := metricValue(t, e, "tessera_estimator_snapshot_age_seconds"); age < 0.2 {
		t.Errorf("tessera_estimator_snapshot_age_seconds = %v, want at least 0.2", age)
	}
}

// metricValue reads a gauge from the server's Tessera registry; it sums the
// series of a labelled gauge.
func metricValue(t *testing.T, e *env, name string) float64 {
	t.Helper()
	families, err := e.server.Metrics().Registry().Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range f.GetMetric() {
			sum += m.GetGauge().GetValue()
		}
		return sum
	}
	t.Fatalf("metric %s is not exported", name)
	return 0
}
