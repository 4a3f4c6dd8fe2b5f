package cluster

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	"github.com/karmada-io/karmada/pkg/estimator/pb"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"google.golang.org/grpc"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// TestKarmadaPropagatesToJoinedMember starts a member and a Karmada control
// plane, points Karmada's estimator for the member at a gRPC server on
// 127.0.0.1, joins the member, and checks the whole path: the Cluster
// object (served by karmada-aggregated-apiserver through the APIService)
// becomes Ready, its resource summary shows the member node's extended
// resource (so karmada-controller-manager reads the member with the joined
// credentials), and a Deployment divided by available replicas reaches
// the member (so karmada-scheduler ran and asked our estimator).
func TestKarmadaPropagatesToJoinedMember(t *testing.T) {
	skipUnlessServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Minute)
	defer cancel()
	paths, err := Binaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	member, err := StartMember(ctx, Options{Name: "member1", Paths: paths, T: t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(member.Stop)
	if _, err := AddNode(ctx, member.Client(), "node-1", corev1.ResourceList{thing: resource.MustParse("4")}, nil); err != nil {
		t.Fatal(err)
	}

	estimator := &recordingEstimator{maxReplicas: 7}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	estimatorservice.RegisterEstimatorServer(server, estimator)
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	// Karmada's default resource models (cpu and memory grades) make its
	// general estimator answer 0 for any request of an extended resource,
	// and karmada-scheduler takes the minimum of all estimators: with the
	// feature on, nothing asking for example.com/thing is ever scheduled.
	noModels := "--feature-gates=" + customizedResourceModelingOff
	k, err := StartKarmada(ctx, KarmadaOptions{Paths: paths, T: t, ControllerManagerArgs: []string{noModels}, SchedulerArgs: []string{noModels}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Stop)
	if err := k.SetEstimator(ctx, "member1", listener.Addr().(*net.TCPAddr).Port); err != nil {
		t.Fatal(err)
	}
	if err := k.JoinMember(ctx, "member1", member); err != nil {
		t.Fatal(err)
	}

	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		c, err := k.KarmadaClient().ClusterV1alpha1().Clusters().Get(ctx, "member1", metav1.GetOptions{})
		if err != nil || c.Status.ResourceSummary == nil {
			return false, nil
		}
		got := c.Status.ResourceSummary.Allocatable[thing]
		return got.Value() == 4, nil
	})
	if err != nil {
		t.Fatalf("Cluster member1 never reported allocatable %s=4 from its node: %v", thing, err)
	}

	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "main", Image: "example.invalid/never-pulled",
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{thing: resource.MustParse("1")}},
				}}},
			},
		},
	}
	if _, err := k.Client().AppsV1().Deployments("default").Create(ctx, deployment, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policy := &policyv1alpha1.PropagationPolicy{
		// karmada-webhook would add the permanent-id label; there is none here.
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default",
			Labels: map[string]string{policyv1alpha1.PropagationPolicyPermanentIDLabel: "4f0e6c55-2d0a-4a59-9d1f-5a3c0f3e7b11"}},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"}},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: []string{"member1"}},
				ReplicaScheduling: &policyv1alpha1.ReplicaSchedulingStrategy{
					ReplicaSchedulingType:     policyv1alpha1.ReplicaSchedulingTypeDivided,
					ReplicaDivisionPreference: policyv1alpha1.ReplicaDivisionPreferenceWeighted,
					WeightPreference:          &policyv1alpha1.ClusterPreferences{DynamicWeight: policyv1alpha1.DynamicWeightByAvailableReplicas},
				},
			},
		},
	}
	if _, err := k.KarmadaClient().PolicyV1alpha1().PropagationPolicies("default").Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := member.Client().AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == 2, nil
	})
	if err != nil {
		c, _ := k.KarmadaClient().ClusterV1alpha1().Clusters().Get(ctx, "member1", metav1.GetOptions{})
		rb, _ := k.KarmadaClient().WorkV1alpha2().ResourceBindings("default").Get(ctx, "web-deployment", metav1.GetOptions{})
		t.Fatalf("Deployment web with 2 replicas never reached member1: %v\nestimator asked about %v\ncluster: %s\nbinding: %s",
			err, estimator.clusters(), toJSON(c), toJSON(rb))
	}
	if seen := estimator.clusters(); !slices.Contains(seen, "member1") {
		t.Fatalf("estimator on %s was asked about clusters %v, want member1", listener.Addr(), seen)
	}
	assertLoopbackListeners(t, append(slices.Clone(member.cp.processes), k.cp.processes...))

	processes := append(slices.Clone(member.cp.processes), k.cp.processes...)
	k.Stop()
	member.Stop()
	for _, p := range processes {
		if p.alive() {
			t.Errorf("%s (pid %d) is still alive after Stop", p.name, p.pid)
		}
	}
}

const customizedResourceModelingOff = "CustomizedClusterResourceModeling=false"

// recordingEstimator answers every MaxAvailableReplicas with maxReplicas
// and records which clusters it was asked about.
type recordingEstimator struct {
	estimatorservice.UnimplementedEstimatorServer
	maxReplicas int32
	mu          sync.Mutex
	asked       []string
}

func (e *recordingEstimator) MaxAvailableReplicas(_ context.Context, req *pb.MaxAvailableReplicasRequest) (*pb.MaxAvailableReplicasResponse, error) {
	e.mu.Lock()
	e.asked = append(e.asked, req.Cluster)
	e.mu.Unlock()
	return &pb.MaxAvailableReplicasResponse{MaxReplicas: e.maxReplicas}, nil
}

func (e *recordingEstimator) clusters() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.asked)
}

func toJSON(v any) string {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(data)
}
