package fleet

import (
	"strings"
	"testing"
)

const deploymentYAML = `# a workload as a user writes it, with its policy
apiVersion: apps/v1
kind: Deployment
metadata:
  name: trainer
spec:
  replicas: 3
  selector: {matchLabels: {app: trainer}}
  template:
    metadata:
      labels: {app: trainer}
      annotations: {tessera.io/gpu-model-include: A100}
    spec:
      nodeSelector: {zone: b}
      containers:
      - name: main
        image: trainer
        resources:
          limits: {tessera.io/vgpu: 1, tessera.io/vgpu-memory: 40960}
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata: {name: trainer}
spec: {resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: trainer}]}
`

func TestReadWorkload(t *testing.T) {
	tests := []struct {
		name, data      string
		kind, container string
		replicas        int32
		wantErr         string
	}{
		{name: "deployment beside a policy", data: deploymentYAML, kind: "Deployment", container: "main", replicas: 3},
		{name: "job parallelism", data: `{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"parallelism":4,"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"x"}]}}}}`,
			kind: "Job", container: "c", replicas: 4},
		{name: "statefulset without replicas means one", data: "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec:\n  serviceName: s\n  selector: {}\n  template:\n    spec:\n      containers: [{name: c, image: x}]\n",
			kind: "StatefulSet", container: "c", replicas: 1},
		{name: "pod", data: "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: x}]\n", kind: "Pod", container: "c", replicas: 1},
		{name: "cronjob", data: "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers: [{name: c, image: x}]\n", kind: "CronJob", container: "c", replicas: 1},
		{name: "no workload", data: "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n", wantErr: "has no Deployment"},
		{name: "empty", data: "# nothing\n", wantErr: "has no Deployment"},
		{name: "two workloads", data: deploymentYAML + "---\n" + deploymentYAML, wantErr: "has 2 workloads"},
		{name: "unknown field", data: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replica: 3\n", wantErr: `unknown field "spec.replica"`},
		{name: "no kind", data: "metadata: {name: d}\n", wantErr: "no kind or apiVersion"},
		{name: "not yaml", data: "{{{", wantErr: "document 1"},
		{name: "too large", data: strings.Repeat("#", MaxWorkloadBytes+1), wantErr: "at most"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := ReadWorkload([]byte(tc.data))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadWorkload: %v", err)
			}
			if w.Kind != tc.kind || w.Replicas != tc.replicas || w.Template.Spec.Containers[0].Name != tc.container {
				t.Errorf("got %s with %d replicas, container %q", w.Kind, w.Replicas, w.Template.Spec.Containers[0].Name)
			}
		})
	}
}

// FuzzReadWorkload: any file gets a workload or an error, never a panic,
// and a workload always has a template with the kind it names.
func FuzzReadWorkload(f *testing.F) {
	f.Add([]byte(deploymentYAML))
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c}]\n"))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte(`{"apiVersion":"batch/v1","kind":"Job","spec":{"parallelism":-1}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := ReadWorkload(data)
		if err == nil && w.Kind == "" {
			t.Fatalf("a workload without a kind from %q", data)
		}
	})
}
