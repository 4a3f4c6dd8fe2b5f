// Package chart renders Tessera's Helm chart (deploy/helm/tessera) with
// Helm's Go library, so that neither a developer nor CI needs a helm
// binary: deploy/render writes the committed manifests with it, and the
// install tests (test/install) render exactly what `helm install` would.
package chart

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// kubeVersion is the Kubernetes version templates see as .Capabilities;
// it matches the k8s.io modules the project builds with.
const kubeVersion = "v1.35.0"

// Options say what to render.
type Options struct {
	// ChartDir is the chart's directory.
	ChartDir    string
	ReleaseName string
	Namespace   string
	// ValuesFiles are merged in order over the chart's values.yaml, as
	// helm's --values does.
	ValuesFiles []string
	// Values are merged last (tests use them).
	Values map[string]any
}

// Render renders every template of the chart and returns the non-empty
// manifests keyed by template path ("tessera/templates/x.yaml").
func Render(opts Options) (map[string]string, error) {
	chrt, err := loader.Load(opts.ChartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", opts.ChartDir, err)
	}
	vals := map[string]any{}
	for _, f := range opts.ValuesFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("read values file %s: %w", f, err)
		}
		vals = MergeValues(vals, v.AsMap())
	}
	vals = MergeValues(vals, opts.Values)
	caps := chartutil.DefaultCapabilities.Copy()
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("parse Kubernetes version %s: %w", kubeVersion, err)
	}
	caps.KubeVersion = *kv
	renderVals, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{
		Name: opts.ReleaseName, Namespace: opts.Namespace, Revision: 1, IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("compute values of chart %s: %w", chrt.Name(), err)
	}
	// Strict: a template that reads a value missing from values.yaml fails
	// instead of rendering an empty string.
	rendered, err := engine.Engine{Strict: true}.Render(chrt, renderVals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", chrt.Name(), err)
	}
	out := make(map[string]string, len(rendered))
	for name, text := range rendered {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" || strings.TrimSpace(text) == "" {
			continue
		}
		out[name] = text
	}
	return out, nil
}

// Manifest joins rendered templates into one multi-document YAML stream,
// ordered by template path, each document under a "# Source:" comment as
// `helm template` writes it.
func Manifest(rendered map[string]string) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(rendered)) {
		for _, doc := range SplitDocuments(rendered[name]) {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", name, doc)
		}
	}
	return b.String()
}

// SplitDocuments splits a YAML stream on "---" lines and drops documents
// that hold nothing but comments and blank lines.
func SplitDocuments(stream string) []string {
	var docs []string
	var cur []string
	flush := func() {
		doc := strings.Trim(strings.Join(cur, "\n"), "\n")
		if hasContent(doc) {
			docs = append(docs, doc)
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(stream, "\n") {
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return docs
}

func hasContent(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

// MergeValues merges src over dst the way helm merges --values files:
// maps merge key by key, anything else replaces.
func MergeValues(dst, src map[string]any) map[string]any {
	out := maps.Clone(dst)
	if out == nil {
		out = map[string]any{}
	}
	for k, v := range src {
		if sv, ok := v.(map[string]any); ok {
			if dv, ok := out[k].(map[string]any); ok {
				out[k] = MergeValues(dv, sv)
				continue
			}
		}
		out[k] = v
	}
	return out
}
