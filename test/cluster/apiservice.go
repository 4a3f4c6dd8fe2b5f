package cluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func apiServiceResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
}

// LoopbackAPIService describes an aggregated API served on 127.0.0.1.
type LoopbackAPIService struct {
	Group, Version string
	// Port is where the aggregated API server listens on 127.0.0.1.
	Port int
	// ServiceNamespace and ServiceName name the ExternalName Service the
	// APIService points at. The server's certificate must be valid for
	// SERVICENAME.SERVICENAMESPACE.svc: that is the name kube-apiserver
	// checks, whatever address it dials.
	ServiceNamespace, ServiceName string
	// CABundle verifies the server's certificate (PEM).
	CABundle []byte
}

// RegisterLoopbackAPIService makes kube-apiserver proxy an API group to a
// server on 127.0.0.1 without any ClusterIP: the APIService points at an
// ExternalName Service whose externalName is 127.0.0.1, and the APIService's
// port is the server's real port. (kube-aggregator dials ExternalName
// services at externalName:port; --enable-aggregator-routing, which would
// use endpoints instead, does not support ExternalName and is left off.)
// It returns once the APIService reports Available.
func RegisterLoopbackAPIService(ctx context.Context, config *rest.Config, api LoopbackAPIService, timeout time.Duration) error {
	what := fmt.Sprintf("APIService %s.%s on 127.0.0.1:%d", api.Version, api.Group, api.Port)
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("register %s: %w", what, err)
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("register %s: %w", what, err)
	}
	if err := ensureNamespace(ctx, client, api.ServiceNamespace); err != nil {
		return fmt.Errorf("register %s: %w", what, err)
	}
	service := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: api.ServiceName, Namespace: api.ServiceNamespace},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: loopback},
	}
	if _, err := client.CoreV1().Services(api.ServiceNamespace).Create(ctx, service, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register %s: create ExternalName service: %w", what, err)
	}
	name := api.Version + "." + api.Group
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"group":                api.Group,
			"version":              api.Version,
			"groupPriorityMinimum": int64(2000),
			"versionPriority":      int64(10),
			"caBundle":             base64.StdEncoding.EncodeToString(api.CABundle), // []byte fields travel as base64
			"service": map[string]any{
				"namespace": api.ServiceNamespace,
				"name":      api.ServiceName,
				"port":      int64(api.Port),
			},
		},
	}}
	if _, err := dyn.Resource(apiServiceResource()).Create(ctx, apiService, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register %s: create APIService: %w", what, err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		obj, err := dyn.Resource(apiServiceResource()).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
		for _, c := range conditions {
			cond, _ := c.(map[string]any)
			if cond["type"] == "Available" {
				last = fmt.Sprintf("Available=%v (%v: %v)", cond["status"], cond["reason"], cond["message"])
				return cond["status"] == "True", nil
			}
		}
		last = "no Available condition yet"
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("register %s: not available after %s: %s", what, timeout, last)
	}
	return nil
}

// ensureNamespace creates a namespace unless it exists.
func ensureNamespace(ctx context.Context, client kubernetes.Interface, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}
