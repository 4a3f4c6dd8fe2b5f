package install

import (
	"fmt"
	"path"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Container is one container of a rendered workload as the kubelet would
// run it.
type Container struct {
	// Workload is the Deployment or DaemonSet, as Key names it.
	Workload  string
	Namespace string
	// ServiceAccount is the pod's serviceAccountName: the identity the
	// container runs as.
	ServiceAccount string
	Spec           corev1.Container
	Volumes        []corev1.Volume
}

// Name is "<workload>/<container>".
func (c Container) Name() string { return c.Workload + "/" + c.Spec.Name }

// Argv is the container's command line before any override: command (or,
// when the chart leaves it to the image, the image's entrypoint) then args.
func (c Container) Argv() []string {
	cmd := c.Spec.Command
	if len(cmd) == 0 {
		cmd = []string{Entrypoint(c.Spec.Image)}
	}
	return append(append([]string(nil), cmd...), c.Spec.Args...)
}

// Entrypoint is the binary a Tessera image runs when the manifest gives no
// command: each image holds one binary named like its repository
// (ghcr.io/tessera-gpu/tessera-node-agent:TAG runs tessera-node-agent).
func Entrypoint(image string) string {
	repo := image
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return path.Base(repo)
}

// Containers lists the containers (not the init containers, which install
// files on a host) of every Deployment and DaemonSet in objs.
func Containers(objs []*unstructured.Unstructured) ([]Container, error) {
	var out []Container
	for _, u := range objs {
		var spec corev1.PodSpec
		switch u.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
				return nil, fmt.Errorf("decode %s: %w", Key(u), err)
			}
			spec = d.Spec.Template.Spec
		case "DaemonSet":
			var d appsv1.DaemonSet
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &d); err != nil {
				return nil, fmt.Errorf("decode %s: %w", Key(u), err)
			}
			spec = d.Spec.Template.Spec
		default:
			continue
		}
		for _, c := range spec.Containers {
			out = append(out, Container{Workload: Key(u), Namespace: u.GetNamespace(),
				ServiceAccount: spec.ServiceAccountName, Spec: c, Volumes: spec.Volumes})
		}
	}
	return out, nil
}

// FindContainer returns the container called name of the workload whose
// key is workload.
func FindContainer(cs []Container, workload, name string) (Container, error) {
	for _, c := range cs {
		if c.Workload == workload && c.Spec.Name == name {
			return c, nil
		}
	}
	return Container{}, fmt.Errorf("no container %q in %s among the rendered workloads", name, workload)
}
