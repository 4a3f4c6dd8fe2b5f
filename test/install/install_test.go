package install_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tessera-gpu/tessera/deploy/chart"
	"github.com/tessera-gpu/tessera/test/install"
)

// memberName is the member's Cluster name in Karmada: the first cluster of
// deploy/helm/examples/karmada-host.yaml.
const memberName = "member1"

// testTimeout bounds the whole test; uninstallTimeout one uninstall.
const (
	testTimeout      = 12 * time.Minute
	uninstallTimeout = time.Minute
)

// valuesSet is one `helm install` the test makes, and a change of values
// for the upgrade step.
type valuesSet struct {
	name    string
	karmada bool // installed on the Karmada API server, not the member
	release install.Release
	changed map[string]any
}

// valuesSets are the chart's default values, every example values file,
// the dashboard's identity (docs/operations.md, "The fleet page") and HAMi
// compatibility with the admission webhook (its MutatingWebhookConfiguration
// trusting caBundle), each on the API server a person would install it on.
func valuesSets(caBundle []byte) []valuesSet {
	return []valuesSet{
		{name: "default values", release: install.Release{Namespace: "kube-system"},
			changed: map[string]any{"nodeAgent": map[string]any{"logVerbosity": 4}, "scheduler": map[string]any{"replicas": 1}}},
		{name: "examples/member-estimator-access.yaml",
			release: install.Release{Namespace: "kube-system", ValuesFiles: []string{"examples/member-estimator-access.yaml"}},
			changed: map[string]any{"config": map[string]any{"node": map[string]any{"splitCount": 4}}}},
		{name: "examples/karmada-host.yaml", karmada: true,
			release: install.Release{Name: "tessera-estimators", Namespace: "karmada-system", ValuesFiles: []string{"examples/karmada-host.yaml"}},
			changed: map[string]any{"estimator": map[string]any{"replicas": 1}}},
		{name: "dashboard identity (dashboard.karmadaAccess)", karmada: true,
			release: install.Release{Namespace: "karmada-system", Values: map[string]any{
				"nodeAgent": map[string]any{"enabled": false}, "scheduler": map[string]any{"enabled": false},
				"dashboard": map[string]any{"karmadaAccess": map[string]any{"enabled": true}}}},
			changed: map[string]any{"config": map[string]any{"node": map[string]any{"splitCount": 4}}}},
		{name: "compat: hami with the admission webhook",
			release: install.Release{Namespace: "kube-system", Values: map[string]any{
				"config":  map[string]any{"compat": "hami"},
				"webhook": map[string]any{"enabled": true, "tlsSecret": "tessera-webhook-tls", "caBundle": base64.StdEncoding.EncodeToString(caBundle)}}},
			changed: map[string]any{"webhook": map[string]any{"replicas": 1}}},
	}
}

// TestInstall installs the chart on real API servers: every values set is
// accepted by server-side apply, applying it again changes nothing, a
// changed values set updates objects in place, and uninstalling removes
// everything. Then it runs every component from the installed manifests
// as the chart's own ServiceAccounts (runComponents).
func TestInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped under -short: starts a member cluster and a Karmada control plane of real servers")
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	// Short: unix socket paths under it must fit in 108 bytes.
	dir, err := mkdirShort(t)
	if err != nil {
		t.Fatal(err)
	}
	s := startServers(ctx, t, dir)
	member, err := install.NewInstaller(memberName, s.member.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	karmada, err := install.NewInstaller("karmada-apiserver", s.karmada.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, vs := range valuesSets(s.member.CAData()) {
		in := member
		if vs.karmada {
			in = karmada
		}
		lifecycle(ctx, t, in, vs)
	}
	runComponents(ctx, t, s, dir, member, karmada)
}

// lifecycle installs, re-applies, upgrades and uninstalls one values set.
func lifecycle(ctx context.Context, t *testing.T, in *install.Installer, vs valuesSet) {
	t.Helper()
	objs, err := install.Render(vs.release)
	if err != nil {
		t.Fatalf("%s: %v", vs.name, err)
	}
	applied, err := in.Apply(ctx, objs)
	if err != nil {
		t.Fatalf("%s: %v", vs.name, err)
	}
	t.Logf("%s on %s: applied %d objects:\n    %s", vs.name, in.Where, len(applied), describe(applied))
	if n := summary(applied); n[install.Created] != len(objs) {
		t.Errorf("%s: first apply %v, want all %d created", vs.name, n, len(objs))
	}
	again, err := in.Apply(ctx, objs)
	if err != nil {
		t.Fatalf("%s: apply again: %v", vs.name, err)
	}
	if n := summary(again); n[install.Unchanged] != len(objs) {
		t.Errorf("%s: applying again changed something: %s", vs.name, describe(again))
	}
	changedRelease := vs.release
	changedRelease.Values = chart.MergeValues(vs.release.Values, vs.changed)
	changed, err := install.Render(changedRelease)
	if err != nil {
		t.Fatalf("%s, changed values: %v", vs.name, err)
	}
	upgraded, err := in.Apply(ctx, changed)
	if err != nil {
		t.Fatalf("%s, changed values: %v", vs.name, err)
	}
	t.Logf("%s on %s: changed values %v:\n    %s", vs.name, in.Where, vs.changed, describe(upgraded))
	n := summary(upgraded)
	if n[install.Configured] == 0 {
		t.Errorf("%s: changed values %v updated nothing", vs.name, vs.changed)
	}
	// Objects that exist in both renders are updated in place, never re-created.
	for _, a := range upgraded {
		if a.Action == install.Created && install.Find(objs, a.Kind, a.Name) != nil {
			t.Errorf("%s: %s was re-created by the upgrade", vs.name, a.Key)
		}
	}
	all := append(append([]*unstructured.Unstructured(nil), objs...), changed...)
	if err := in.Uninstall(ctx, all, uninstallTimeout); err != nil {
		t.Fatalf("%s: %v", vs.name, err)
	}
	release := vs.release.Name
	if release == "" {
		release = "tessera"
	}
	left, err := in.Labelled(ctx, all, release)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("%s: uninstall left %v", vs.name, left)
	}
}
