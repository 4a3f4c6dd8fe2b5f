package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// MaxWorkloadBytes bounds a workload file: far above any real manifest,
// small enough that a pasted file cannot exhaust memory.
const MaxWorkloadBytes = 1 << 20

// Workload is the pod template of a workload file and its replica count.
type Workload struct {
	// Kind and Name say which object of the file it came from.
	Kind, Name string
	Template   corev1.PodTemplateSpec
	// Replicas is the workload's own count (1 for a Pod or a Job's
	// parallelism); 0 when the object does not say.
	Replicas int32
}

// ReadWorkload reads the one workload in a YAML or JSON file: a
// Deployment, StatefulSet, ReplicaSet, DaemonSet, Job, CronJob, Pod or
// PodTemplate. Other objects in the file (a PropagationPolicy, a Service)
// are skipped; none or several workloads is an error, as is anything that
// does not decode strictly.
func ReadWorkload(data []byte) (Workload, error) {
	if len(data) > MaxWorkloadBytes {
		return Workload{}, fmt.Errorf("read workload: the file has %d bytes; at most %d are read", len(data), MaxWorkloadBytes)
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var found []Workload
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Workload{}, fmt.Errorf("read workload: document %d: %w", doc, err)
		}
		w, ok, err := decodeWorkload(raw)
		if err != nil {
			return Workload{}, fmt.Errorf("read workload: document %d: %w", doc, err)
		}
		if ok {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return Workload{}, errors.New("read workload: the file has no Deployment, StatefulSet, ReplicaSet, DaemonSet, Job, CronJob, Pod or PodTemplate")
	case 1:
		if found[0].Replicas < 0 {
			return Workload{}, fmt.Errorf("read workload: %s %s has a negative replica count %d", found[0].Kind, found[0].Name, found[0].Replicas)
		}
		return found[0], nil
	}
	return Workload{}, fmt.Errorf("read workload: the file has %d workloads (%s %s, %s %s, ...); give one",
		len(found), found[0].Kind, found[0].Name, found[1].Kind, found[1].Name)
}

// strictCodecs decode Kubernetes objects rejecting unknown and duplicate fields.
var strictCodecs = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)

// decodeWorkload decodes one document; ok is false for an empty document
// or an object that is not a workload.
func decodeWorkload(raw []byte) (Workload, bool, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return Workload{}, false, nil
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return Workload{}, false, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	if tm.Kind == "" || tm.APIVersion == "" {
		// An empty YAML document (only comments) decodes to nothing.
		if isEmptyDocument(raw) {
			return Workload{}, false, nil
		}
		return Workload{}, false, errors.New("the object has no kind or apiVersion")
	}
	if !isWorkloadKind(tm) {
		return Workload{}, false, nil
	}
	obj, _, err := strictCodecs.UniversalDeserializer().Decode(raw, nil, nil)
	if err != nil {
		return Workload{}, false, fmt.Errorf("decode %s: %w", tm.Kind, err)
	}
	return workloadOf(obj)
}

func isEmptyDocument(raw []byte) bool {
	var v any
	return yaml.Unmarshal(raw, &v) == nil && v == nil
}

// isWorkloadKind reports whether a kind is one ReadWorkload reads.
func isWorkloadKind(tm metav1.TypeMeta) bool {
	switch tm.GroupVersionKind() {
	case appsv1.SchemeGroupVersion.WithKind("Deployment"), appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
		appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), appsv1.SchemeGroupVersion.WithKind("DaemonSet"),
		batchv1.SchemeGroupVersion.WithKind("Job"), batchv1.SchemeGroupVersion.WithKind("CronJob"),
		corev1.SchemeGroupVersion.WithKind("Pod"), corev1.SchemeGroupVersion.WithKind("PodTemplate"):
		return true
	}
	return false
}

func workloadOf(obj runtime.Object) (Workload, bool, error) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return Workload{Kind: "Deployment", Name: o.Name, Template: o.Spec.Template, Replicas: deref(o.Spec.Replicas, 1)}, true, nil
	case *appsv1.StatefulSet:
		return Workload{Kind: "StatefulSet", Name: o.Name, Template: o.Spec.Template, Replicas: deref(o.Spec.Replicas, 1)}, true, nil
	case *appsv1.ReplicaSet:
		return Workload{Kind: "ReplicaSet", Name: o.Name, Template: o.Spec.Template, Replicas: deref(o.Spec.Replicas, 1)}, true, nil
	case *appsv1.DaemonSet:
		return Workload{Kind: "DaemonSet", Name: o.Name, Template: o.Spec.Template}, true, nil
	case *batchv1.Job:
		return Workload{Kind: "Job", Name: o.Name, Template: o.Spec.Template, Replicas: deref(o.Spec.Parallelism, 1)}, true, nil
	case *batchv1.CronJob:
		t := o.Spec.JobTemplate.Spec
		return Workload{Kind: "CronJob", Name: o.Name, Template: t.Template, Replicas: deref(t.Parallelism, 1)}, true, nil
	case *corev1.Pod:
		return Workload{Kind: "Pod", Name: o.Name, Template: corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec}, Replicas: 1}, true, nil
	case *corev1.PodTemplate:
		return Workload{Kind: "PodTemplate", Name: o.Name, Template: o.Template}, true, nil
	}
	return Workload{}, false, fmt.Errorf("unexpected object %T", obj)
}

func deref(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
