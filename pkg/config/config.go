// Package config is Tessera's one configuration file, read by every
// component: the resource names and annotation prefix that all of them must
// agree on, and the node agent's own settings.
package config

import (
	"errors"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// Config is the whole file.
type Config struct {
	Resources        ResourceNames `json:"resources"`
	AnnotationPrefix string        `json:"annotationPrefix"`
	Node             NodeAgent     `json:"node"`
	// Compat names another scheduler's pod vocabulary accepted beside
	// Tessera's own: "" or "hami" (compat.go).
	Compat string `json:"compat"`
	// HAMi holds HAMi's defaults, used with compat: hami only.
	HAMi HAMiDefaults `json:"hami"`
}

// ResourceNames are the extended resources pods request.
type ResourceNames struct {
	// VGPU is advertised by the device plugin: one per GPU slot.
	VGPU string `json:"vgpu"`
	// Memory (MiB) and Cores (percent) are published on the Node status.
	Memory string `json:"memory"`
	Cores  string `json:"cores"`
}

// GPU backends.
const (
	BackendNVML = "nvml"
	BackendMock = "mock"
)

// NodeAgent configures the per-node agent.
type NodeAgent struct {
	// SplitCount is the number of vGPU slots each healthy GPU offers.
	SplitCount int `json:"splitCount"`
	// MemoryScaling multiplies each GPU's physical memory to give its
	// schedulable memory (above 1 overcommits).
	MemoryScaling float64 `json:"memoryScaling"`
	// GPUBackend is "nvml" (the real driver) or "mock" (go-nvml's mocks).
	GPUBackend string `json:"gpuBackend"`
	// Mock describes the mock node when GPUBackend is "mock".
	Mock MockNode `json:"mock"`
	// DevicePluginDir holds kubelet.sock and the plugin's own socket.
	DevicePluginDir string `json:"devicePluginDir"`
	// StateDir (host path) holds per-container usage regions and the
	// ld.so.preload file handed to containers.
	StateDir string `json:"stateDir"`
	// HookLibrary is the host path of libtessera-hook.so.
	HookLibrary string `json:"hookLibrary"`
	// PodResourcesSocket is the kubelet's PodResources API socket, from
	// which the device plugin learns whose allocation each Allocate was.
	PodResourcesSocket string `json:"podResourcesSocket"`
	// LimitsWait is how long the interception library waits, at CUDA
	// initialisation, for a container's limits before it fails CUDA calls.
	LimitsWait metav1.Duration `json:"limitsWait"`
	// HealthRecovery is how long a GPU must be quiet after an Xid error
	// before it is healthy again; 0 means it stays unhealthy until the
	// agent restarts.
	HealthRecovery metav1.Duration `json:"healthRecovery"`
	// ExtraIgnoredXids are Xids to ignore besides the application errors
	// that NVIDIA's device plugin ignores.
	ExtraIgnoredXids []uint64 `json:"extraIgnoredXids"`
}

// MockNode selects go-nvml mock GPUs: either a whole machine ("dgxa100",
// "dgxh100", "dgxh200") or a list of GPU models with counts.
type MockNode struct {
	Machine string    `json:"machine"`
	GPUs    []MockGPU `json:"gpus"`
}

// MockGPU is Count GPUs of one go-nvml mock model (for example
// "A100-SXM4-40GB", "H100-SXM5-80GB").
type MockGPU struct {
	Model string `json:"model"`
	Count int    `json:"count"`
}

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		Resources: ResourceNames{
			VGPU:   "tessera.io/vgpu",
			Memory: "tessera.io/vgpu-memory",
			Cores:  "tessera.io/vgpu-cores",
		},
		AnnotationPrefix: annotations.DefaultPrefix,
		HAMi:             defaultHAMi(),
		Node: NodeAgent{
			SplitCount:         10,
			MemoryScaling:      1,
			GPUBackend:         BackendNVML,
			DevicePluginDir:    "/var/lib/kubelet/device-plugins",
			StateDir:           "/var/lib/tessera",
			HookLibrary:        "/usr/local/tessera/lib/libtessera-hook.so",
			PodResourcesSocket: "/var/lib/kubelet/pod-resources/kubelet.sock",
			LimitsWait:         metav1.Duration{Duration: time.Minute},
			HealthRecovery:     metav1.Duration{Duration: 5 * time.Minute},
		},
	}
}

// Load reads a YAML or JSON file over the defaults. Unknown fields are an
// error, so that a misspelt setting is never silently ignored.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config %s: %w", path, err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes a configuration over the defaults and validates it.
func Parse(data []byte) (Config, error) {
	cfg := Default()
	// sigs.k8s.io/yaml's own UnmarshalStrict matches field names without
	// regard to case (encoding/json's rule), so "splitcount" would be taken
	// for "splitCount". Kubernetes' strict, case-sensitive decoder is used
	// instead, as for the kubelet's own config file.
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	strictErrs, err := kjson.UnmarshalStrict(js, &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("decode: %w", err)
	}
	if len(strictErrs) > 0 {
		return Config{}, fmt.Errorf("decode: %w", errors.Join(strictErrs...))
	}
	cfg.applyProfile()
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Keys returns the annotation keys under the configured prefix.
func (c Config) Keys() annotations.Keys {
	k, err := annotations.NewKeys(c.AnnotationPrefix)
	if err != nil {
		panic(fmt.Sprintf("config was not validated: %v", err))
	}
	k.Compat = c.AnnotationCompat()
	return k
}
