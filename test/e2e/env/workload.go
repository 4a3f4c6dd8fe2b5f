package env

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// AppLabel is the label that selects a workload's pods.
const AppLabel = "app"

// workloadImage is never pulled: there is no container runtime.
const workloadImage = "example.invalid/cuda-app:never-pulled"

// GPURequest is what one replica (one container) asks for.
type GPURequest struct {
	// GPUs is the number of distinct GPUs (the vgpu resource).
	GPUs int64
	// MemoryMiB is the total memory over those GPUs; 0 leaves it out (whole GPUs).
	MemoryMiB int64
	// Cores is the total percent of SMs; 0 leaves it out (no core cap).
	Cores int64
}

// Resources is the request as a resource list under the configured names.
func (r GPURequest) Resources(names config.ResourceNames) corev1.ResourceList {
	rl := corev1.ResourceList{corev1.ResourceName(names.VGPU): *resource.NewQuantity(r.GPUs, resource.DecimalSI)}
	if r.MemoryMiB > 0 {
		rl[corev1.ResourceName(names.Memory)] = *resource.NewQuantity(r.MemoryMiB, resource.DecimalSI)
	}
	if r.Cores > 0 {
		rl[corev1.ResourceName(names.Cores)] = *resource.NewQuantity(r.Cores, resource.DecimalSI)
	}
	return rl
}

// Workload is a Deployment whose replicas each ask for one GPURequest.
type Workload struct {
	Namespace, Name string
	Replicas        int32
	Request         GPURequest
}

// podTemplate is the replicas' pod: one container whose requests equal its
// limits (Karmada derives a replica's requirements from requests, and a
// template, unlike a pod, gets no requests defaulted from its limits).
func (w Workload) podTemplate(names config.ResourceNames) corev1.PodTemplateSpec {
	rl := w.Request.Resources(names)
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{AppLabel: w.Name}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers: []corev1.Container{{
				Name: "main", Image: workloadImage, Command: []string{"python", "serve.py"},
				Resources: corev1.ResourceRequirements{Limits: rl, Requests: rl.DeepCopy()},
			}},
		},
	}
}

// Deployment is the workload as a Deployment.
func (w Workload) Deployment(names config.ResourceNames) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name, Labels: map[string]string{AppLabel: w.Name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(w.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{AppLabel: w.Name}},
			Template: w.podTemplate(names),
		},
	}
}

// PropagationPolicy divides the workload's replicas over clusters by how
// many each can take: Divided, Weighted, dynamic weight AvailableReplicas.
// There is no karmada-webhook in the environment, so the policy carries the
// permanent-id label the webhook would add.
func (w Workload) PropagationPolicy(clusters []string) *policyv1alpha1.PropagationPolicy {
	return &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name,
			Labels: map[string]string{policyv1alpha1.PropagationPolicyPermanentIDLabel: uuid.NewString()}},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{APIVersion: "apps/v1", Kind: "Deployment", Name: w.Name}},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity: &policyv1alpha1.ClusterAffinity{ClusterNames: clusters},
				ReplicaScheduling: &policyv1alpha1.ReplicaSchedulingStrategy{
					ReplicaSchedulingType:     policyv1alpha1.ReplicaSchedulingTypeDivided,
					ReplicaDivisionPreference: policyv1alpha1.ReplicaDivisionPreferenceWeighted,
					WeightPreference:          &policyv1alpha1.ClusterPreferences{DynamicWeight: policyv1alpha1.DynamicWeightByAvailableReplicas},
				},
			},
		},
	}
}

// Propagate creates the workload's Deployment and PropagationPolicy on
// Karmada, to be divided over every member.
func (e *Env) Propagate(ctx context.Context, w Workload) error {
	if _, err := e.karmada.Client().AppsV1().Deployments(w.Namespace).Create(ctx, w.Deployment(e.cfg.Resources), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create Deployment %s/%s on Karmada: %w", w.Namespace, w.Name, err)
	}
	pp := w.PropagationPolicy(e.memberNames())
	if _, err := e.karmada.KarmadaClient().PolicyV1alpha1().PropagationPolicies(w.Namespace).Create(ctx, pp, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create PropagationPolicy %s/%s on Karmada: %w", w.Namespace, w.Name, err)
	}
	return nil
}

// Scale sets the replicas of a propagated workload on Karmada.
func (e *Env) Scale(ctx context.Context, namespace, name string, replicas int32) error {
	patch := fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas)
	if _, err := e.karmada.Client().AppsV1().Deployments(namespace).Patch(ctx, name, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("scale Deployment %s/%s on Karmada to %d: %w", namespace, name, replicas, err)
	}
	return nil
}

// GPUPod is a bare pod labelled app=<app> asking for request, to be
// created straight in a member (for example to use GPUs before a scenario
// starts); kube-scheduler and the extender place it, the node's kubelet
// admits it.
func GPUPod(namespace, name, app string, request GPURequest, names config.ResourceNames) *corev1.Pod {
	t := Workload{Namespace: namespace, Name: app, Request: request}.podTemplate(names)
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: t.Labels}, Spec: t.Spec}
}
