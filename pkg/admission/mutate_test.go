package admission

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
)

func parseConfig(t testing.TB, text string) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// limits builds a resource list from name, quantity pairs.
func limits(kv ...string) corev1.ResourceList {
	l := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

func ctr(name string, lim, req corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Image: "ubuntu", Resources: corev1.ResourceRequirements{Limits: lim, Requests: req}}
}

// apply applies m's patch to pod as the API server does, and decodes the result.
func apply(t testing.TB, pod *corev1.Pod, m Mutation) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := json.Marshal(m.Patch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(ops)
	if err != nil {
		t.Fatalf("patch %s does not decode: %v", ops, err)
	}
	patched, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("patch %s does not apply: %v", ops, err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(patched, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMutate(t *testing.T) {
	hami := parseConfig(t, "compat: hami")
	const gpuPath = "/resources/limits/nvidia.com~1gpu"
	tests := []struct {
		name     string
		cfg      config.Config
		init     []corev1.Container
		main     []corev1.Container
		want     []PatchOp
		warnings []string
	}{
		{
			name: "gpumem only gets nvidia.com/gpu: 1",
			main: []corev1.Container{ctr("app", limits(config.HAMiMemory, "10240"), nil)},
			want: []PatchOp{{"add", "/spec/containers/0" + gpuPath, "1"}},
		},
		{
			name: "each container that needs it, init containers too, by its own index",
			init: []corev1.Container{ctr("warm", limits(config.HAMiCores, "20"), nil)},
			main: []corev1.Container{
				ctr("plain", limits("cpu", "1"), nil),
				ctr("pct", limits(config.HAMiMemoryPercent, "50", "memory", "1Gi"), nil),
				ctr("given", limits(config.HAMiGPU, "2", config.HAMiMemory, "3000"), nil),
			},
			want: []PatchOp{{"add", "/spec/initContainers/0" + gpuPath, "1"}, {"add", "/spec/containers/1" + gpuPath, "1"}},
		},
		{
			name: "hami.defaultGPUNum is the count added",
			cfg:  parseConfig(t, "compat: hami\nhami: {defaultGPUNum: 2}"),
			main: []corev1.Container{ctr("app", limits(config.HAMiMemory, "3000"), nil)},
			want: []PatchOp{{"add", "/spec/containers/0" + gpuPath, "2"}},
		},
		{
			name: "defaultGPUNum 0 adds nothing, as in HAMi",
			cfg:  parseConfig(t, "compat: hami\nhami: {defaultGPUNum: 0}"),
			main: []corev1.Container{ctr("app", limits(config.HAMiMemory, "3000"), nil)},
		},
		{
			name: "pods without HAMi resources are untouched",
			main: []corev1.Container{ctr("app", limits("cpu", "1", "memory", "1Gi"), nil), ctr("none", nil, nil)},
		},
		{
			name: "Tessera's names are untouched",
			main: []corev1.Container{ctr("app", limits("tessera.io/vgpu-memory", "3000", "tessera.io/vgpu-cores", "20"), nil)},
		},
		{
			name: "HAMi's memory in requests only is left to the API server, which refuses it",
			main: []corev1.Container{ctr("app", limits("cpu", "1"), limits(config.HAMiMemory, "3000"))},
		},
		{
			name: "without compat: hami nothing is added",
			cfg:  config.Default(),
			main: []corev1.Container{ctr("app", limits(config.HAMiMemory, "3000"), nil)},
		},
		{
			name:     "an unreadable quantity leaves the container as it is, with a warning",
			main:     []corev1.Container{ctr("bad", limits(config.HAMiMemory, "1.5"), nil), ctr("good", limits(config.HAMiCores, "10"), nil)},
			want:     []PatchOp{{"add", "/spec/containers/1" + gpuPath, "1"}},
			warnings: []string{`container "bad": resource nvidia.com/gpumem: quantity 1500m is not a whole number`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := hami
			if tt.cfg.Resources.VGPU != "" {
				cfg = tt.cfg
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"},
				Spec:       corev1.PodSpec{InitContainers: tt.init, Containers: tt.main},
			}
			m := Mutate(pod, cfg)
			if !reflect.DeepEqual(m.Patch, tt.want) {
				t.Errorf("patch %+v, want %+v", m.Patch, tt.want)
			}
			if len(m.Warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %d", m.Warnings, len(tt.warnings))
			}
			for i, w := range tt.warnings {
				if !strings.Contains(m.Warnings[i], w) {
					t.Errorf("warning %q lacks %q", m.Warnings[i], w)
				}
			}
			patched := apply(t, pod, m)
			// Idempotent: the patched pod needs nothing more.
			if again := Mutate(patched, cfg); len(again.Patch) != 0 {
				t.Errorf("patched pod patched again: %+v", again.Patch)
			}
			// Nothing else changed: undo the added limits and compare.
			for _, op := range m.Patch {
				field, i, err := containerAt(op.Path)
				if err != nil {
					t.Fatal(err)
				}
				list := patched.Spec.Containers
				if field == "initContainers" {
					list = patched.Spec.InitContainers
				}
				q := list[i].Resources.Limits[config.HAMiGPU]
				if q.String() != op.Value {
					t.Errorf("%s: limit %s, want %s", op.Path, q.String(), op.Value)
				}
				delete(list[i].Resources.Limits, config.HAMiGPU)
			}
			if !reflect.DeepEqual(normalize(t, patched), normalize(t, pod)) {
				t.Errorf("the patch changed more than nvidia.com/gpu:\n got %+v\nwant %+v", patched.Spec, pod.Spec)
			}
		})
	}
}

// containerAt reads "/spec/<field>/<index>/..." from a patch path.
func containerAt(path string) (string, int, error) {
	parts := strings.Split(path, "/")
	if len(parts) < 4 || parts[1] != "spec" {
		return "", 0, fmt.Errorf("patch path %q is not in a container of the pod spec", path)
	}
	i, err := strconv.Atoi(parts[3])
	return parts[2], i, err
}

// normalize round-trips a pod through JSON, so that quantities compare by value.
func normalize(t *testing.T, pod *corev1.Pod) map[string]any {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEscapePointer(t *testing.T) {
	for in, want := range map[string]string{"nvidia.com/gpu": "nvidia.com~1gpu", "a~b/c": "a~0b~1c", "plain": "plain"} {
		if got := escapePointer(in); got != want {
			t.Errorf("escapePointer(%q) = %q, want %q", in, got, want)
		}
	}
}
