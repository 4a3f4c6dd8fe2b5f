package fleet

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	estimatorclient "github.com/karmada-io/karmada/pkg/estimator/client"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"
	"github.com/karmada-io/karmada/pkg/util/helper"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	discoveryfake "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet/fleettest"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/server"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// estimatorOverGRPC is a real Tessera estimator server for one member on
// 127.0.0.1, asked through Karmada's own estimator client, as
// karmada-scheduler asks it.
type estimatorOverGRPC struct {
	cluster string
	client  *estimatorclient.SchedulerEstimator
}

func startEstimator(t *testing.T, cluster string, nodes []*corev1.Node, pods []*corev1.Pod) *estimatorOverGRPC {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	objs := make([]runtime.Object, 0, len(nodes)+len(pods))
	for _, n := range nodes {
		objs = append(objs, n)
	}
	for _, p := range pods {
		objs = append(objs, p)
	}
	kube := fake.NewClientset(objs...)
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		appsv1.SchemeGroupVersion.WithResource("deployments"): "DeploymentList",
	})
	disc := &discoveryfake.FakeDiscovery{Fake: &kube.Fake}
	s, err := server.New(ctx, server.Clients{Kube: kube, Dynamic: dyn, Discovery: disc}, server.Config{
		ClusterName: cluster, Tessera: config.Default(), ProbeInterval: time.Second, ProbeTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("create estimator: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start estimator: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = s.Serve(ctx, lis, &grpcconnection.ServerConfig{}) }()
	conn, err := (&grpcconnection.ClientConfig{}).DialWithTimeOut([]string{lis.Addr().String()}, 5*time.Second)
	if err != nil {
		t.Fatalf("dial estimator: %v", err)
	}
	cache := estimatorclient.NewSchedulerEstimatorCache()
	cache.AddCluster(cluster, conn, estimatorservice.NewEstimatorClient(conn))
	t.Cleanup(func() { cache.DeleteCluster(cluster) })
	return &estimatorOverGRPC{cluster: cluster, client: estimatorclient.NewSchedulerEstimator(cache, 10*time.Second)}
}

func (e *estimatorOverGRPC) maxReplicas(t *testing.T, template corev1.PodTemplateSpec) int32 {
	t.Helper()
	res, err := e.client.MaxAvailableReplicas(context.Background(), estimatorclient.ReplicaEstimationRequest{
		Clusters:            []*clusterv1alpha1.Cluster{{ObjectMeta: metav1.ObjectMeta{Name: e.cluster}}},
		ReplicaRequirements: helper.GenerateReplicaRequirements(&template),
	})
	if err != nil {
		t.Fatalf("ask the estimator over gRPC: %v", err)
	}
	return res[0].Replicas
}

// fitShapes are the replicas both sides are asked about: shares of one or
// two GPUs, with and without core caps, whole GPUs, and a zone selector.
func fitShapes(t *testing.T) map[string]corev1.PodTemplateSpec {
	t.Helper()
	shapes := map[string]Shape{
		"1x8Gi":           {VGPUs: 1, Memory: "8Gi"},
		"1x40Gi":          {VGPUs: 1, Memory: "40Gi"},
		"1x64Gi-30cores":  {VGPUs: 1, Memory: "64Gi", Cores: 30},
		"2x80Gi":          {VGPUs: 2, Memory: "80Gi"},
		"2x160Gi-cores":   {VGPUs: 2, Memory: "160Gi", Cores: 120},
		"whole-gpu":       {VGPUs: 1},
		"4x16Gi-per-gpu4": {VGPUs: 4, Memory: "64Gi"},
	}
	out := map[string]corev1.PodTemplateSpec{}
	for name, s := range shapes {
		tmpl, err := s.Template(config.Default().Resources)
		if err != nil {
			t.Fatalf("shape %s: %v", name, err)
		}
		out[name] = tmpl
		zoned := *tmpl.DeepCopy()
		zoned.Spec.NodeSelector = map[string]string{"zone": "b"}
		out[name+"-zone-b"] = zoned
	}
	return out
}

// TestFitEqualsEstimatorOverGRPC is the promise of `tessera fit`: on
// randomized fragmented clusters, the fleet's exact count is the number
// the member's estimator answers karmada-scheduler over gRPC.
func TestFitEqualsEstimatorOverGRPC(t *testing.T) {
	shapes := fitShapes(t)
	var nonzero, zero int
	for seed := range uint64(20) {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			nodes, pods := testcluster.Fragmented(seed, 4+int(seed)%3, 8, 5+int(seed)*2, []string{"a", "b"})
			est := startEstimator(t, "member", nodes, pods)
			st := NewState(config.Default(), time.Now(), []MemberInput{{Cluster: fleettest.ReadyCluster("member"), Nodes: nodes, Pods: pods}})
			for name, tmpl := range shapes {
				res, err := st.Fit(context.Background(), FitRequest{Template: tmpl})
				if err != nil {
					t.Fatalf("%s: Fit: %v", name, err)
				}
				want := est.maxReplicas(t, tmpl)
				if got := res.Clusters[0].Tessera; got != want {
					t.Errorf("%s: tessera fit says %d, the estimator over gRPC %d", name, got, want)
				}
				if want == 0 {
					zero++
				} else {
					nonzero++
				}
			}
		})
	}
	// Both outcomes must occur, or the comparison proves little.
	if nonzero < 10 || zero < 10 {
		t.Errorf("the shapes gave %d non-zero and %d zero answers; the clusters do not exercise the fit", nonzero, zero)
	}
}
