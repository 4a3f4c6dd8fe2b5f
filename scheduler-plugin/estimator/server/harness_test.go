package server

import (
	"context"
	"net"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	discoveryfake "k8s.io/client-go/discovery/fake"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	estimatorclient "github.com/karmada-io/karmada/pkg/estimator/client"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"

	"github.com/tessera-gpu/tessera/pkg/config"
)

const testCluster = "member1"

// env is a running Tessera estimator on 127.0.0.1 with Karmada's own
// estimator client connected to it, as karmada-scheduler connects.
type env struct {
	server *Server
	kube   *fake.Clientset
	client *estimatorclient.SchedulerEstimator
	rpc    estimatorservice.EstimatorClient
}

func startEnv(t *testing.T, objects ...runtime.Object) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	kube := fake.NewClientset(objects...)
	dynamicClient := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		appsv1.SchemeGroupVersion.WithResource("deployments"): "DeploymentList",
	})
	discovery := &discoveryfake.FakeDiscovery{Fake: &kube.Fake}
	discovery.Resources = []*metav1.APIResourceList{{
		GroupVersion: appsv1.SchemeGroupVersion.String(),
		APIResources: []metav1.APIResource{{Name: "deployments", Namespaced: true, Kind: "Deployment"}},
	}}
	s, err := New(ctx, Clients{Kube: kube, Dynamic: dynamicClient, Discovery: discovery}, Config{
		ClusterName: testCluster, Tessera: config.Default(), Parallelism: 2,
		ProbeInterval: 20 * time.Millisecond, ProbeTimeout: time.Second,
	})
	if err != nil {
		cancel()
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("listen: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, lis, &grpcconnection.ServerConfig{}) }()
	conn, err := (&grpcconnection.ClientConfig{}).DialWithTimeOut([]string{lis.Addr().String()}, 5*time.Second)
	if err != nil {
		cancel()
		t.Fatalf("dial: %v", err)
	}
	rpc := estimatorservice.NewEstimatorClient(conn)
	cache := estimatorclient.NewSchedulerEstimatorCache()
	cache.AddCluster(testCluster, conn, rpc)
	t.Cleanup(func() {
		cache.DeleteCluster(testCluster)
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &env{server: s, kube: kube, client: estimatorclient.NewSchedulerEstimator(cache, 10*time.Second), rpc: rpc}
}

// maxReplicas asks through Karmada's client, as karmada-scheduler does.
func (e *env) maxReplicas(t *testing.T, rl corev1.ResourceList, claim *workv1alpha2.NodeClaim) (int32, error) {
	t.Helper()
	res, err := e.client.MaxAvailableReplicas(context.Background(), estimatorclient.ReplicaEstimationRequest{
		Clusters:            []*clusterv1alpha1.Cluster{{ObjectMeta: metav1.ObjectMeta{Name: testCluster}}},
		ReplicaRequirements: &workv1alpha2.ReplicaRequirements{ResourceRequest: rl, NodeClaim: claim},
	})
	if err != nil {
		return 0, err
	}
	return res[0].Replicas, nil
}

// componentSets asks MaxAvailableComponentSets through Karmada's client.
func (e *env) componentSets(t *testing.T, components []workv1alpha2.Component) (int32, error) {
	t.Helper()
	res, err := e.client.MaxAvailableComponentSets(context.Background(), estimatorclient.ComponentSetEstimationRequest{
		Clusters:   []*clusterv1alpha1.Cluster{{ObjectMeta: metav1.ObjectMeta{Name: testCluster}}},
		Components: components,
		Namespace:  "default",
	})
	if err != nil {
		return 0, err
	}
	return res[0].Sets, nil
}

func objects(nodes []*corev1.Node, pods []*corev1.Pod) []runtime.Object {
	out := make([]runtime.Object, 0, len(nodes)+len(pods))
	for _, n := range nodes {
		out = append(out, n)
	}
	for _, p := range pods {
		out = append(out, p)
	}
	return out
}
