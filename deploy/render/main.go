package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/deploy/chart"
)

// ManifestSet is one committed file under deploy/manifests and how it is
// rendered. The chart tests render the same list, so a committed file that
// differs from a fresh render fails them.
type ManifestSet struct {
	// File is relative to deploy/manifests.
	File        string
	Namespace   string
	ValuesFiles []string // relative to deploy/helm
}

// ManifestSets lists every committed manifest.
func ManifestSets() []ManifestSet {
	return []ManifestSet{
		// A member cluster: node agents and the GPU scheduler.
		{File: "tessera.yaml", Namespace: "kube-system"},
		// The Karmada host: one estimator per member cluster.
		{File: "tessera-karmada-estimators.yaml", Namespace: "karmada-system", ValuesFiles: []string{"examples/karmada-host.yaml"}},
		// A member cluster whose estimator runs on the Karmada host.
		{File: "tessera-member-estimator-access.yaml", Namespace: "kube-system", ValuesFiles: []string{"examples/member-estimator-access.yaml"}},
	}
}

// ReleaseName is the release name of every committed manifest.
const ReleaseName = "tessera"

// RenderSet renders one manifest set; deployDir is the repository's deploy/.
func RenderSet(deployDir string, set ManifestSet) (string, error) {
	var files []string
	for _, f := range set.ValuesFiles {
		files = append(files, filepath.Join(deployDir, "helm", f))
	}
	rendered, err := chart.Render(chart.Options{
		ChartDir:    filepath.Join(deployDir, "helm", "tessera"),
		ReleaseName: ReleaseName,
		Namespace:   set.Namespace,
		ValuesFiles: files,
	})
	if err != nil {
		return "", fmt.Errorf("render %s: %w", set.File, err)
	}
	header := fmt.Sprintf("# Rendered from deploy/helm/tessera by deploy/render.sh; do not edit.\n# Release %q in namespace %q", ReleaseName, set.Namespace)
	for _, f := range set.ValuesFiles {
		header += ", values deploy/helm/" + f
	}
	return header + ".\n" + chart.Manifest(rendered), nil
}

func main() {
	deployDir := flag.String("deploy-dir", "deploy", "the repository's deploy directory")
	check := flag.Bool("check", false, "only check that the committed manifests equal a fresh render")
	flag.Parse()
	if err := run(*deployDir, *check); err != nil {
		klog.ErrorS(err, "Rendering manifests failed")
		os.Exit(1)
	}
}

func run(deployDir string, check bool) error {
	var errs []error
	for _, set := range ManifestSets() {
		text, err := RenderSet(deployDir, set)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		path := filepath.Join(deployDir, "manifests", set.File)
		if check {
			have, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(have, []byte(text)) {
				errs = append(errs, fmt.Errorf("%s is not a fresh render of the chart; run deploy/render.sh", path))
			}
			continue
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", path, err))
			continue
		}
		fmt.Println("wrote", path)
	}
	return errors.Join(errs...)
}
