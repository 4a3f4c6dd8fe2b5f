package env

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	policyv1alpha1 "github.com/karmada-io/karmada/pkg/apis/policy/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	estimatorclient "github.com/karmada-io/karmada/pkg/estimator/client"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"
	"github.com/karmada-io/karmada/pkg/util/names"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/tessera-gpu/tessera/pkg/config"
	estimatormetrics "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/metrics"
)

// Multi-component workloads. Karmada v1.18.0 fills a ResourceBinding's
// spec.components only under the MultiplePodTemplatesScheduling gate and
// only for kinds whose resource interpreter implements InterpretComponent
// (pkg/detector/detector.go, applyReplicaInterpretation). Deployments do not
// (pkg/resourceinterpreter/interpreter.go: the native interpreter's
// GetComponents is "not implemented yet"); Kubeflow's PyTorchJob does, in
// the interpreter customizations built into karmada-controller-manager
// (pkg/resourceinterpreter/default/thirdparty/resourcecustomizations/
// kubeflow.org/v1/PyTorchJob): a "master" and a "worker" component from
// spec.pytorchReplicaSpecs, each with kube.accuratePodRequirements of its
// template. So the environment uses PyTorchJob: its CRD on Karmada and on
// the members (no operator runs there; RunPyTorchJobPods creates the pods
// the operator would).

// PyTorchJobGVR is Kubeflow's PyTorchJob resource.
var PyTorchJobGVR = schema.GroupVersionResource{Group: "kubeflow.org", Version: "v1", Resource: "pytorchjobs"}

// pyTorchJobCRD is a minimal PyTorchJob CRD: the group, version and kind
// Karmada's built-in interpreter knows, and a schema that keeps every field.
func pyTorchJobCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: PyTorchJobGVR.Resource + "." + PyTorchJobGVR.Group},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: PyTorchJobGVR.Group,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: PyTorchJobGVR.Resource, Singular: "pytorchjob", Kind: "PyTorchJob", ListKind: "PyTorchJobList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: PyTorchJobGVR.Version, Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true),
				}},
				Subresources: &apiextensionsv1.CustomResourceSubresources{Status: &apiextensionsv1.CustomResourceSubresourceStatus{}},
			}},
		},
	}
}

// InstallPyTorchJobCRD creates the PyTorchJob CRD on Karmada and on every
// member and waits until each serves it.
func (e *Env) InstallPyTorchJobCRD(ctx context.Context, timeout time.Duration) error {
	configs := map[string]*rest.Config{"karmada": e.karmada.RESTConfig()}
	for _, m := range e.members {
		configs[m.name] = m.cluster.RESTConfig()
	}
	crd := pyTorchJobCRD()
	for where, cfg := range configs {
		client, err := apiextensionsclient.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("PyTorchJob CRD on %s: %w", where, err)
		}
		crds := client.ApiextensionsV1().CustomResourceDefinitions()
		if _, err := crds.Create(ctx, crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create the PyTorchJob CRD on %s: %w", where, err)
		}
		err = Eventually(ctx, timeout, "the PyTorchJob CRD to be established on "+where, func(ctx context.Context) (bool, string, error) {
			got, err := crds.Get(ctx, crd.Name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			for _, c := range got.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, "established", nil
				}
			}
			return false, fmt.Sprintf("conditions %v", got.Status.Conditions), nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// PyTorchJob is a two-template workload: Masters and Workers replicas,
// each one container asking for its GPURequest.
type PyTorchJob struct {
	Namespace, Name  string
	Masters, Workers int32
	Master, Worker   GPURequest
}

// Object is the PyTorchJob as Karmada's interpreter and the operator read it.
func (j PyTorchJob) Object(names config.ResourceNames) (*unstructured.Unstructured, error) {
	spec := map[string]any{}
	for _, r := range []struct {
		typ      string
		replicas int32
		req      GPURequest
	}{{"Master", j.Masters, j.Master}, {"Worker", j.Workers, j.Worker}} {
		tmpl := Workload{Namespace: j.Namespace, Name: j.Name, Request: r.req}.podTemplate(names)
		raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&tmpl)
		if err != nil {
			return nil, fmt.Errorf("PyTorchJob %s: %s template: %w", j.Name, r.typ, err)
		}
		spec[r.typ] = map[string]any{"replicas": int64(r.replicas), "restartPolicy": "Never", "template": raw}
	}
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"pytorchReplicaSpecs": spec}}}
	u.SetAPIVersion(PyTorchJobGVR.GroupVersion().String())
	u.SetKind("PyTorchJob")
	u.SetNamespace(j.Namespace)
	u.SetName(j.Name)
	return u, nil
}

// PropagationPolicy sends the whole job to exactly one member, the way
// Karmada v1.18.0 schedules multi-template workloads: its scheduler takes
// the MaxAvailableComponentSets path only when a cluster spread constraint
// asks for exactly one cluster (pkg/scheduler/core/estimation.go,
// isMultiTemplateSchedulingApplicable), and it weighs the answers (needing
// 1 set) only when replica scheduling is Divided (select_clusters.go,
// shouldIgnoreAvailableResource).
func (j PyTorchJob) PropagationPolicy(clusters []string) *policyv1alpha1.PropagationPolicy {
	return &policyv1alpha1.PropagationPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: j.Namespace, Name: j.Name,
			Labels: map[string]string{policyv1alpha1.PropagationPolicyPermanentIDLabel: uuid.NewString()}},
		Spec: policyv1alpha1.PropagationSpec{
			ResourceSelectors: []policyv1alpha1.ResourceSelector{{APIVersion: PyTorchJobGVR.GroupVersion().String(), Kind: "PyTorchJob", Name: j.Name}},
			Placement: policyv1alpha1.Placement{
				ClusterAffinity:   &policyv1alpha1.ClusterAffinity{ClusterNames: clusters},
				SpreadConstraints: []policyv1alpha1.SpreadConstraint{{SpreadByField: policyv1alpha1.SpreadByFieldCluster, MinGroups: 1, MaxGroups: 1}},
				ReplicaScheduling: &policyv1alpha1.ReplicaSchedulingStrategy{
					ReplicaSchedulingType:     policyv1alpha1.ReplicaSchedulingTypeDivided,
					ReplicaDivisionPreference: policyv1alpha1.ReplicaDivisionPreferenceAggregated,
				},
			},
		},
	}
}

// PropagatePyTorchJob creates the job and its PropagationPolicy on Karmada.
func (e *Env) PropagatePyTorchJob(ctx context.Context, j PyTorchJob) error {
	obj, err := j.Object(e.cfg.Resources)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(e.karmada.RESTConfig())
	if err != nil {
		return fmt.Errorf("propagate PyTorchJob %s: %w", j.Name, err)
	}
	if _, err := dyn.Resource(PyTorchJobGVR).Namespace(j.Namespace).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create PyTorchJob %s/%s on Karmada: %w", j.Namespace, j.Name, err)
	}
	pp := j.PropagationPolicy(e.memberNames())
	if _, err := e.karmada.KarmadaClient().PolicyV1alpha1().PropagationPolicies(j.Namespace).Create(ctx, pp, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create PropagationPolicy %s/%s on Karmada: %w", j.Namespace, j.Name, err)
	}
	return nil
}

// BindingOf is the ResourceBinding Karmada made for a resource of this kind
// (names.GenerateBindingName), nil while it does not exist.
func (e *Env) BindingOf(ctx context.Context, namespace, kind, name string) (*workv1alpha2.ResourceBinding, error) {
	rb, err := e.karmada.KarmadaClient().WorkV1alpha2().ResourceBindings(namespace).Get(ctx, names.GenerateBindingName(kind, name), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get ResourceBinding of %s %s/%s: %w", kind, namespace, name, err)
	}
	return rb, nil
}

// MemberPyTorchJob is the job as Karmada applied it in the member; nil
// while it is not there.
func (m *Member) MemberPyTorchJob(ctx context.Context, namespace, name string) (*unstructured.Unstructured, error) {
	dyn, err := dynamic.NewForConfig(m.cluster.RESTConfig())
	if err != nil {
		return nil, fmt.Errorf("PyTorchJob in %s: %w", m.name, err)
	}
	u, err := dyn.Resource(PyTorchJobGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get PyTorchJob %s/%s in %s: %w", namespace, name, m.name, err)
	}
	return u, nil
}

// RunPyTorchJobPods does what Kubeflow's training operator would do with
// the job Karmada applied in the member: one pod per replica of each
// replica type, from that type's template as propagated (named
// <job>-<type>-<i>, labelled app=<job>). It returns the pods' names.
func (m *Member) RunPyTorchJobPods(ctx context.Context, job *unstructured.Unstructured) ([]string, error) {
	specs, found, err := unstructured.NestedMap(job.Object, "spec", "pytorchReplicaSpecs")
	if err != nil || !found {
		return nil, fmt.Errorf("PyTorchJob %s in %s has no spec.pytorchReplicaSpecs (%v)", job.GetName(), m.name, err)
	}
	var created []string
	for _, typ := range []string{"Master", "Worker"} {
		spec, ok := specs[typ].(map[string]any)
		if !ok {
			continue
		}
		replicas, _, _ := unstructured.NestedInt64(spec, "replicas")
		raw, _, _ := unstructured.NestedMap(spec, "template")
		var tmpl corev1.PodTemplateSpec
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &tmpl); err != nil {
			return created, fmt.Errorf("PyTorchJob %s in %s: %s template: %w", job.GetName(), m.name, typ, err)
		}
		for i := range replicas {
			pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
			pod.Namespace = job.GetNamespace()
			pod.Name = fmt.Sprintf("%s-%s-%d", job.GetName(), strings.ToLower(typ), i)
			if pod.Labels == nil {
				pod.Labels = map[string]string{}
			}
			pod.Labels[AppLabel] = job.GetName()
			pod.Labels["training.kubeflow.org/replica-type"] = strings.ToLower(typ)
			if _, err := m.Client().CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				return created, fmt.Errorf("create pod %s in %s: %w", pod.Name, m.name, err)
			}
			created = append(created, pod.Name)
		}
	}
	return created, nil
}

// SetEstimate is what Karmada's two estimators answer for a component set
// in one member.
type SetEstimate struct {
	// Stock is Karmada's general estimator's MaxAvailableComponentSets,
	// computed on the Cluster object as karmada-scheduler computes it.
	Stock int32
	// Tessera is the member's Tessera estimator's answer, asked through
	// Karmada's own estimator client (gRPC), as karmada-scheduler asks it.
	Tessera int32
}

// ComponentSets asks both estimators how many sets of components fit in
// the member now.
func (e *Env) ComponentSets(ctx context.Context, member, namespace string, components []workv1alpha2.Component) (SetEstimate, error) {
	m := e.Member(member)
	if m == nil {
		return SetEstimate{}, fmt.Errorf("component sets: no member %q", member)
	}
	c, err := e.karmada.KarmadaClient().ClusterV1alpha1().Clusters().Get(ctx, member, metav1.GetOptions{})
	if err != nil {
		return SetEstimate{}, fmt.Errorf("component sets in %s: get Cluster: %w", member, err)
	}
	req := estimatorclient.ComponentSetEstimationRequest{Clusters: []*clusterv1alpha1.Cluster{c}, Components: components, Namespace: namespace}
	stock, err := estimatorclient.NewGeneralEstimator().MaxAvailableComponentSets(ctx, req)
	if err != nil || len(stock) != 1 {
		return SetEstimate{}, fmt.Errorf("component sets in %s: general estimator: %v (%d answers)", member, err, len(stock))
	}
	addr := m.EstimatorAddress()
	if addr == "" {
		return SetEstimate{}, fmt.Errorf("component sets: no Tessera estimator is serving for %s", member)
	}
	conn, err := (&grpcconnection.ClientConfig{}).DialWithTimeOut([]string{addr}, estimateTimeout)
	if err != nil {
		return SetEstimate{}, fmt.Errorf("component sets: dial the estimator of %s at %s: %w", member, addr, err)
	}
	cache := estimatorclient.NewSchedulerEstimatorCache()
	cache.AddCluster(member, conn, estimatorservice.NewEstimatorClient(conn))
	defer cache.DeleteCluster(member) // closes conn
	tessera, err := estimatorclient.NewSchedulerEstimator(cache, estimateTimeout).MaxAvailableComponentSets(ctx, req)
	if err != nil || len(tessera) != 1 {
		return SetEstimate{}, fmt.Errorf("component sets: the estimator of %s: %v (%d answers)", member, err, len(tessera))
	}
	return SetEstimate{Stock: stock[0].Sets, Tessera: tessera[0].Sets}, nil
}

// EstimatorAnswers is how many times the member's Tessera estimator has
// answered the RPC (for example "MaxAvailableComponentSets") successfully,
// read from its own request-duration histogram: each member's estimator has
// a registry of its own, unlike Karmada's process-wide estimator metrics.
func (m *Member) EstimatorAnswers(ctx context.Context, rpc string) (uint64, error) {
	addr := m.MetricsAddress()
	if addr == "" {
		return 0, fmt.Errorf("estimator answers: no Tessera estimator is serving for %s", m.name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, fmt.Errorf("estimator answers of %s: %w", m.name, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape the estimator of %s: %w", m.name, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parse the estimator metrics of %s: %w", m.name, err)
	}
	var n uint64
	for _, metric := range families[estimatormetrics.Namespace+"_request_duration_seconds"].GetMetric() {
		labels := map[string]string{}
		for _, l := range metric.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["rpc"] == rpc && labels["code"] == "OK" {
			n += metric.GetHistogram().GetSampleCount()
		}
	}
	return n, nil
}
