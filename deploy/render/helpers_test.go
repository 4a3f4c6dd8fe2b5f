package main

import (
	"path/filepath"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/deploy/chart"
)

// deployDir is the repository's deploy/ seen from this package.
const deployDir = ".."

// rendered is one release rendered and decoded.
type rendered struct {
	objects []object
}

// object is one decoded manifest.
type object struct {
	source string
	gvk    schema.GroupVersionKind
	// typed is the client-go object; nil for kinds outside the scheme
	// (the ServiceMonitor), which are in unstructured.
	typed        runtime.Object
	unstructured *unstructured.Unstructured
	name, ns     string
}

func (o object) key() string { return o.gvk.Kind + "/" + o.name }

// strictDecoder decodes admissionregistration/v1, apps/v1, core/v1 and rbac/v1 objects, failing on
// unknown and duplicate fields.
func strictDecoder(t *testing.T) *kjson.Serializer {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{admissionregistrationv1.AddToScheme, appsv1.AddToScheme, corev1.AddToScheme, rbacv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
}

// renderRelease renders the chart with values merged over values.yaml and
// decodes every document strictly; any failure fails the test.
func renderRelease(t *testing.T, namespace string, values map[string]any, valuesFiles ...string) rendered {
	t.Helper()
	var files []string
	for _, f := range valuesFiles {
		files = append(files, filepath.Join(deployDir, "helm", f))
	}
	out, err := chart.Render(chart.Options{
		ChartDir: filepath.Join(deployDir, "helm", "tessera"), ReleaseName: ReleaseName,
		Namespace: namespace, ValuesFiles: files, Values: values,
	})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return decodeManifest(t, chart.Manifest(out))
}

func decodeManifest(t *testing.T, manifest string) rendered {
	t.Helper()
	dec := strictDecoder(t)
	var r rendered
	seen := map[string]bool{}
	for _, doc := range chart.SplitDocuments(manifest) {
		source := "?"
		if first, _, ok := strings.Cut(doc, "\n"); ok && strings.HasPrefix(first, "# Source: ") {
			source = strings.TrimPrefix(first, "# Source: ")
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("%s: not YAML: %v\n%s", source, err, doc)
		}
		gv, err := schema.ParseGroupVersion(head.APIVersion)
		if err != nil {
			t.Fatalf("%s: apiVersion %q: %v", source, head.APIVersion, err)
		}
		o := object{source: source, gvk: gv.WithKind(head.Kind)}
		switch gv.Group {
		case "monitoring.coreos.com":
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				t.Fatalf("%s: %v", source, err)
			}
			o.unstructured, o.name, o.ns = u, u.GetName(), u.GetNamespace()
		default:
			obj, _, err := dec.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: strict decoding of %s failed: %v\n%s", source, o.gvk, err, doc)
			}
			m, err := meta.Accessor(obj)
			if err != nil {
				t.Fatalf("%s: %v", source, err)
			}
			o.typed, o.name, o.ns = obj, m.GetName(), m.GetNamespace()
		}
		if o.name == "" {
			t.Fatalf("%s: %s has no name", source, o.gvk)
		}
		id := o.gvk.String() + "/" + o.ns + "/" + o.name
		if seen[id] {
			t.Fatalf("%s: %s is rendered twice", source, id)
		}
		seen[id] = true
		r.objects = append(r.objects, o)
	}
	return r
}

// get returns the typed object of a kind and name, failing when absent.
func get[T runtime.Object](t *testing.T, r rendered, kind, name string) T {
	t.Helper()
	for _, o := range r.objects {
		if o.gvk.Kind == kind && o.name == name {
			v, ok := o.typed.(T)
			if !ok {
				t.Fatalf("%s/%s is a %T", kind, name, o.typed)
			}
			return v
		}
	}
	t.Fatalf("no %s named %s was rendered; have %v", kind, name, r.keys())
	var zero T
	return zero
}

func (r rendered) keys() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, o.key())
	}
	return out
}

func (r rendered) has(kind, name string) bool {
	for _, o := range r.objects {
		if o.gvk.Kind == kind && o.name == name {
			return true
		}
	}
	return false
}

// all returns every typed object of type T.
func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.typed.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}
