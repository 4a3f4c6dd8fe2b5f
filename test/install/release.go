// Package install installs Tessera's Helm chart on real API servers the way
// `helm install` would, and runs Tessera's components the way the rendered
// manifests say, for the install tests and the chart-based end-to-end run:
//
//   - Render renders a release with deploy/chart (Helm's library) and
//     decodes every object;
//   - Installer applies them with server-side apply (field manager
//     "tessera-install") through a dynamic client and a RESTMapper, reports
//     what each apply did, and uninstalls what a release created;
//   - ServiceAccountKubeconfig writes a kubeconfig holding a TokenRequest
//     token of a ServiceAccount, so that a component runs as the chart's
//     own identity, never as admin (ServiceAccountToken, TokenFileConfig
//     and TokenFileKubeconfig do the same for the e2e environment's
//     in-process components, with a token file it renews);
//   - Containers reads each workload's command, arguments, environment and
//     volumes, and Launch runs one container as a local process with the
//     loopback overrides of Overrides and nothing else changed;
//   - Forbidden finds the API server's "forbidden" answers in a
//     component's log and names the verb and resource each one lacked.
package install

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/deploy/chart"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// Release is one `helm install` of the chart.
type Release struct {
	Name      string // "tessera" if empty
	Namespace string
	// ValuesFiles are paths relative to deploy/helm (for example
	// "examples/karmada-host.yaml"), merged in order as --values does.
	ValuesFiles []string
	// Values are merged last, as --set does.
	Values map[string]any
}

// Render renders the release and decodes every object, in the order of
// the chart's template paths (as `helm template` prints them).
func Render(r Release) ([]*unstructured.Unstructured, error) {
	helmDir, err := cluster.RepoFile("deploy/helm")
	if err != nil {
		return nil, err
	}
	if r.Name == "" {
		r.Name = "tessera"
	}
	files := make([]string, 0, len(r.ValuesFiles))
	for _, f := range r.ValuesFiles {
		files = append(files, filepath.Join(helmDir, f))
	}
	rendered, err := chart.Render(chart.Options{
		ChartDir: filepath.Join(helmDir, "tessera"), ReleaseName: r.Name, Namespace: r.Namespace,
		ValuesFiles: files, Values: r.Values,
	})
	if err != nil {
		return nil, err
	}
	return Decode(chart.Manifest(rendered))
}

// Decode decodes a multi-document manifest into objects.
func Decode(manifest string) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	for i, doc := range chart.SplitDocuments(manifest) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return nil, fmt.Errorf("decode document %d of the manifest: %w", i+1, err)
		}
		if u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d of the manifest has no kind or name:\n%s", i+1, doc)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

// Key names an object as kubectl prints it: Kind/namespace/name.
func Key(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return u.GetKind() + "/" + ns + "/" + u.GetName()
	}
	return u.GetKind() + "/" + u.GetName()
}

// Find returns the object of kind and name, or nil.
func Find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	i := slices.IndexFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == kind && u.GetName() == name })
	if i < 0 {
		return nil
	}
	return objs[i]
}

// Keys lists the objects' keys, for a log line.
func Keys(objs []*unstructured.Unstructured) string {
	keys := make([]string, 0, len(objs))
	for _, u := range objs {
		keys = append(keys, Key(u))
	}
	return strings.Join(keys, ", ")
}
