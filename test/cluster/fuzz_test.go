package cluster

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// FuzzSchedulerConfig feeds arbitrary YAML to the scheduler configuration
// merge: it must return an error or a document that names our kubeconfig
// and turns leader election off, and never panic.
func FuzzSchedulerConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"null",
		"apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nextenders: [{urlPrefix: 'http://127.0.0.1:1'}]\n",
		"clientConnection: {kubeconfig: /other, qps: 5}\nleaderElection: {leaderElect: true}\n",
		"clientConnection: []",
		"kind: 3",
		"- 1",
		"a: [",
		"{",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, user string) {
		out, err := schedulerConfig(user, "/k")
		if err != nil {
			return
		}
		doc := map[string]any{}
		if err := yaml.Unmarshal(out, &doc); err != nil {
			t.Fatalf("output does not parse: %v\n%s", err, out)
		}
		cc, _ := doc["clientConnection"].(map[string]any)
		le, _ := doc["leaderElection"].(map[string]any)
		if cc["kubeconfig"] != "/k" || le["leaderElect"] != false || doc["kind"] != schedulerConfigKind {
			t.Fatalf("merged configuration lost our settings:\n%s", out)
		}
	})
}

// FuzzParseBuildOutput feeds arbitrary script output to the parser: it must
// return absolute directories for what was asked, or an error.
func FuzzParseBuildOutput(f *testing.F) {
	f.Add("ETCD_BIN=/a\nKUBERNETES_BIN=/b\nKARMADA_BIN=/c\nKARMADA_CRDS=/d\n")
	f.Add("ETCD_BIN=\n=\n==/x\nKUBERNETES_BIN=rel\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, out string) {
		p, err := parseBuildOutput(out, []Component{ComponentEtcd, ComponentKubernetes, ComponentKarmada})
		if err != nil {
			return
		}
		for _, dir := range []string{p.Etcd, p.Kubernetes, p.Karmada, p.KarmadaCRDs} {
			if !strings.HasPrefix(dir, "/") {
				t.Fatalf("non-absolute directory %q from %q", dir, out)
			}
		}
	})
}
