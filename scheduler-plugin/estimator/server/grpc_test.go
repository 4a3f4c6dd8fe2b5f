package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/informers"
	clientset "k8s.io/client-go/kubernetes"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins/noderesource"

	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

const (
	resVGPU   = "tessera.io/vgpu"
	resMemory = "tessera.io/vgpu-memory"
	resCores  = "tessera.io/vgpu-cores"
)

func quantities(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

type stockHandle struct{}

func (stockHandle) ClientSet() clientset.Interface                         { return nil }
func (stockHandle) SharedInformerFactory() informers.SharedInformerFactory { return nil }
func (stockHandle) Parallelism() int                                       { return 0 }

// stockAnswer is what Karmada's noderesource plugin alone says for the
// server's current snapshot.
func stockAnswer(t *testing.T, s *Server, rl corev1.ResourceList, claim *pb.NodeClaim) int32 {
	t.Helper()
	snapshot, err := s.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.snapshots.release(snapshot)
	pl, err := noderesource.New(stockHandle{})
	if err != nil {
		t.Fatal(err)
	}
	n, _ := pl.(framework.EstimateReplicasPlugin).Estimate(context.Background(), framework.ReplicaEstimationContext{
		Snapshot: snapshot.Snapshot, ReplicaRequirements: (&pb.ReplicaRequirements{NodeClaim: claim}).MustSetResourceRequest(rl),
	})
	return n
}

// TestKarmadaClientMatchesBruteForce generates fragmented clusters (8 GPUs
// per node, most of them partly used), asks the server through Karmada's
// own estimator client over gRPC, and checks every answer against an
// exhaustive packer; Karmada's stock answer is logged beside it.
func TestKarmadaClientMatchesBruteForce(t *testing.T) {
	shapes := []struct {
		name  string
		rl    corev1.ResourceList
		shape bruteShape
	}{
		{"1 GPU, 16 GiB", quantities(resVGPU, "1", resMemory, "16384", "cpu", "1", "memory", "2Gi"),
			bruteShape{width: 1, memMiB: 16384, milliCPU: 1000, memoryBytes: 2 << 30}},
		{"1 GPU, 8 GiB, 30% cores", quantities(resVGPU, "1", resMemory, "8192", resCores, "30"),
			bruteShape{width: 1, memMiB: 8192, cores: 30}},
		{"2 GPUs, 10 GiB each", quantities(resVGPU, "2", resMemory, "20480", "cpu", "2"),
			bruteShape{width: 2, memMiB: 10240, milliCPU: 2000}},
		{"whole GPU", quantities(resVGPU, "1", "cpu", "4"),
			bruteShape{width: 1, whole: true, milliCPU: 4000}},
		{"4 GPUs, 1 GiB and 10% each", quantities(resVGPU, "4", resMemory, "4096", resCores, "40"),
			bruteShape{width: 4, memMiB: 1024, cores: 10}},
		{"3 GPUs, 10000 MiB each, CPU-heavy", quantities(resVGPU, "3", resMemory, "30000", "cpu", "20"),
			bruteShape{width: 3, memMiB: 10000, milliCPU: 20000}},
	}
	for seed := uint64(1); seed <= 3; seed++ {
		nodes, pods := tc.Fragmented(seed, 12, 8, 14, []string{"a", "b"})
		e := startEnv(t, objects(nodes, pods)...)
		for _, sh := range shapes {
			for _, zone := range []string{"", "b"} {
				t.Run(fmt.Sprintf("seed %d/%s/zone %q", seed, sh.name, zone), func(t *testing.T) {
					var claim *workv1alpha2.NodeClaim
					var pbClaim *pb.NodeClaim
					if zone != "" {
						claim = &workv1alpha2.NodeClaim{NodeSelector: map[string]string{"zone": zone}}
						pbClaim = &pb.NodeClaim{NodeSelector: claim.NodeSelector}
					}
					got, err := e.maxReplicas(t, sh.rl, claim)
					if err != nil {
						t.Fatalf("MaxAvailableReplicas: %v", err)
					}
					shape := sh.shape
					shape.zone = zone
					want := bruteForce(t, nodes, pods, shape)
					t.Logf("tessera %d, brute force %d, Karmada noderesource alone %d", got, want, stockAnswer(t, e.server, sh.rl, pbClaim))
					if int64(got) != want {
						t.Errorf("estimator says %d replicas, brute force %d", got, want)
					}
				})
			}
		}
	}
}

// TestComponentSetsOverGRPC checks MaxAvailableComponentSets end to end.
func TestComponentSetsOverGRPC(t *testing.T) {
	var nodes []*corev1.Node
	for _, name := range []string{"n1", "n2"} {
		spec := tc.NodeSpec{Name: name, MilliCPU: 64000, MemoryBytes: 512 << 30, Pods: 110}
		for i := range 4 {
			spec.GPUs = append(spec.GPUs, tc.GPU(name, i))
		}
		nodes = append(nodes, tc.Node(spec))
	}
	e := startEnv(t, objects(nodes, nil)...)
	component := func(name string, replicas int32, rl corev1.ResourceList) workv1alpha2.Component {
		return workv1alpha2.Component{Name: name, Replicas: replicas, ReplicaRequirements: &workv1alpha2.ComponentReplicaRequirements{ResourceRequest: rl}}
	}
	launcher := component("launcher", 1, quantities("cpu", "2"))
	got, err := e.componentSets(t, []workv1alpha2.Component{launcher, component("worker", 3, quantities(resVGPU, "1", "cpu", "1"))})
	if err != nil || got != 2 {
		t.Errorf("launcher + 3 whole-GPU workers on 8 GPUs = %d, %v; want 2", got, err)
	}
	got, err = e.componentSets(t, []workv1alpha2.Component{launcher, component("worker", 6, quantities(resVGPU, "1"))})
	if err != nil || got != 1 {
		t.Errorf("a set spanning both nodes = %d, %v; want 1", got, err)
	}
	_, err = e.componentSets(t, []workv1alpha2.Component{component("idle", 0, quantities(resVGPU, "1"))})
	if err == nil || !strings.Contains(err.Error(), "InvalidArgument") {
		t.Errorf("a set with no replica: err = %v, want InvalidArgument", err)
	}
}
