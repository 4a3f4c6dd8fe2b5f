package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// wantErr lists substrings that must all be in the error; nil means success.
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "empty file gives the defaults",
			in:   "",
			check: func(t *testing.T, c Config) {
				if !reflect.DeepEqual(c, Default()) {
					t.Errorf("got %+v, want the defaults %+v", c, Default())
				}
			},
		},
		{
			name: "YAML overrides only what it names",
			in: `
resources:
  vgpu: example.com/gpu-share
annotationPrefix: example.com
node:
  splitCount: 4
  memoryScaling: 1.5
  healthRecovery: 30s
  extraIgnoredXids: [31, 43]
`,
			check: func(t *testing.T, c Config) {
				if c.Resources.VGPU != "example.com/gpu-share" || c.Resources.Memory != "tessera.io/vgpu-memory" {
					t.Errorf("resources = %+v", c.Resources)
				}
				if c.Node.SplitCount != 4 || c.Node.MemoryScaling != 1.5 || c.Node.HealthRecovery.Duration != 30*time.Second {
					t.Errorf("node = %+v", c.Node)
				}
				if !reflect.DeepEqual(c.Node.ExtraIgnoredXids, []uint64{31, 43}) {
					t.Errorf("extraIgnoredXids = %v", c.Node.ExtraIgnoredXids)
				}
				if got := c.Keys().Inventory; got != "example.com/gpu-inventory" {
					t.Errorf("inventory key = %q", got)
				}
			},
		},
		{
			name: "JSON is accepted too",
			in:   `{"node": {"gpuBackend": "mock", "mock": {"gpus": [{"model": "A100-SXM4-40GB", "count": 2}]}}}`,
			check: func(t *testing.T, c Config) {
				want := MockNode{GPUs: []MockGPU{{Model: "A100-SXM4-40GB", Count: 2}}}
				if c.Node.GPUBackend != BackendMock || !reflect.DeepEqual(c.Node.Mock, want) {
					t.Errorf("node = %+v", c.Node)
				}
			},
		},
		{name: "mock machine", in: "node: {gpuBackend: mock, mock: {machine: dgxa100}}"},
		{name: "unknown field is an error", in: "node:\n  splitcount: 4\n", wantErr: []string{"decode", "splitcount"}},
		{name: "duplicate field is an error", in: "annotationPrefix: a.io\nannotationPrefix: b.io\n", wantErr: []string{"decode"}},
		{name: "not YAML", in: "node: [", wantErr: []string{"decode"}},
		{name: "wrong type", in: "node: {splitCount: ten}", wantErr: []string{"decode"}},
		{name: "split count zero", in: "node: {splitCount: 0}", wantErr: []string{"node.splitCount: 0 is outside 1-256"}},
		{name: "split count too large", in: "node: {splitCount: 257}", wantErr: []string{"node.splitCount: 257"}},
		{name: "memory scaling zero", in: "node: {memoryScaling: 0}", wantErr: []string{"node.memoryScaling"}},
		{name: "memory scaling too large", in: "node: {memoryScaling: 11}", wantErr: []string{"node.memoryScaling"}},
		{name: "memory scaling NaN", in: "node: {memoryScaling: .nan}", wantErr: []string{"decode"}},
		{name: "unknown backend", in: "node: {gpuBackend: cuda}", wantErr: []string{`node.gpuBackend: "cuda"`}},
		{name: "mock without GPUs", in: "node: {gpuBackend: mock}", wantErr: []string{"node.mock: set machine"}},
		{name: "mock with both", in: "node: {gpuBackend: mock, mock: {machine: dgxa100, gpus: [{model: A30, count: 1}]}}", wantErr: []string{"not both"}},
		{name: "mock GPU without model", in: "node: {gpuBackend: mock, mock: {gpus: [{count: 1}]}}", wantErr: []string{"node.mock.gpus[0]"}},
		{name: "mock GPU count huge", in: "node: {gpuBackend: mock, mock: {gpus: [{model: A30, count: 1000000000}]}}", wantErr: []string{"node.mock.gpus[0]", "1-64"}},
		{name: "mock GPUs too many in all", in: "node: {gpuBackend: mock, mock: {gpus: [{model: A30, count: 40}, {model: A100-SXM4-40GB, count: 40}]}}", wantErr: []string{"80 GPUs in all"}},
		{name: "relative path", in: "node: {stateDir: var/lib/tessera}", wantErr: []string{`node.stateDir: "var/lib/tessera" is not an absolute path`}},
		{name: "negative recovery", in: "node: {healthRecovery: -1s}", wantErr: []string{"node.healthRecovery"}},
		{name: "resource in kubernetes.io", in: "resources: {cores: kubernetes.io/cores}", wantErr: []string{"resources.cores", "not an extended resource name"}},
		{name: "resource without domain", in: "resources: {vgpu: vgpu}", wantErr: []string{"resources.vgpu"}},
		{name: "resource used twice", in: "resources: {cores: tessera.io/vgpu-memory}", wantErr: []string{`resources.cores: "tessera.io/vgpu-memory" is used twice`}},
		{name: "bad annotation prefix", in: "annotationPrefix: Not_A_Domain", wantErr: []string{"annotationPrefix"}},
		{
			name:    "every problem is reported at once",
			in:      "node: {splitCount: 0, memoryScaling: -1, stateDir: rel}",
			wantErr: []string{"node.splitCount", "node.memoryScaling", "node.stateDir"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded with %+v; want an error containing %q", c, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestValidateIsDeterministic guards the order of reported problems: a user
// who fixes one and reruns must see the rest in the same order.
func TestValidateIsDeterministic(t *testing.T) {
	c := Default()
	c.Resources = ResourceNames{VGPU: "x", Memory: "x", Cores: "x"}
	c.Node.StateDir, c.Node.HookLibrary, c.Node.DevicePluginDir = "a", "b", "c"
	first := c.Validate().Error()
	for range 20 {
		if got := c.Validate().Error(); got != first {
			t.Fatalf("Validate changed its message:\n%s\nthen\n%s", first, got)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "node: {splitCount: 3}\n")
	bad := write("bad.yaml", "node: {splitCount: -3}\n")
	missing := filepath.Join(dir, "missing.yaml")

	tests := []struct {
		name    string
		path    string
		wantErr string
		split   int
	}{
		{name: "good file", path: good, split: 3},
		{name: "invalid content names the file", path: bad, wantErr: "config " + bad + ": node.splitCount"},
		{name: "missing file names the file", path: missing, wantErr: "read config " + missing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load(%s) error = %v, want it to contain %q", tt.path, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Node.SplitCount != tt.split {
				t.Errorf("splitCount = %d, want %d", c.Node.SplitCount, tt.split)
			}
		})
	}
}
