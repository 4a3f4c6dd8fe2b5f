package gpustate

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

const (
	resVGPU   = "tessera.io/vgpu"
	resMemory = "tessera.io/vgpu-memory"
	resCores  = "tessera.io/vgpu-cores"
)

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func container(name string, limits, requests corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Limits: limits, Requests: requests}}
}

func mustContainer(t *testing.T, name string, gpus int, mem int64, memSet bool, cores int) vgpu.ContainerRequest {
	t.Helper()
	c, err := vgpu.NewContainerRequest(name, gpus, mem, memSet, cores)
	if err != nil {
		t.Fatalf("NewContainerRequest: %v", err)
	}
	return c
}

func TestPodRequest(t *testing.T) {
	cfg := config.Default()
	tests := []struct {
		name        string
		annotations map[string]string
		init        []corev1.Container
		containers  []corev1.Container
		want        vgpu.PodRequest
		wantErr     string
	}{
		{
			name:       "containers without Tessera resources are left out",
			containers: []corev1.Container{container("web", rl("cpu", "1"), nil)},
			want:       vgpu.PodRequest{GPUPolicy: vgpu.Binpack},
		},
		{
			name: "limits give the request; memory and cores split per GPU",
			containers: []corev1.Container{
				container("trainer", rl(resVGPU, "2", resMemory, "20480", resCores, "60"), nil),
				container("sidecar", rl("cpu", "100m"), nil),
			},
			want: vgpu.PodRequest{GPUPolicy: vgpu.Binpack, Containers: []vgpu.ContainerRequest{
				mustContainer(t, "trainer", 2, 20480, true, 60),
			}},
		},
		{
			name:       "requests alone count when no limit is set",
			containers: []corev1.Container{container("c", nil, rl(resVGPU, "1", resMemory, "1024"))},
			want: vgpu.PodRequest{GPUPolicy: vgpu.Binpack, Containers: []vgpu.ContainerRequest{
				mustContainer(t, "c", 1, 1024, true, 0),
			}},
		},
		{
			name:       "vGPU without memory takes whole GPUs",
			containers: []corev1.Container{container("c", rl(resVGPU, "1"), nil)},
			want: vgpu.PodRequest{GPUPolicy: vgpu.Binpack, Containers: []vgpu.ContainerRequest{
				mustContainer(t, "c", 1, 0, false, 0),
			}},
		},
		{
			name:       "init containers come first",
			init:       []corev1.Container{container("prep", rl(resVGPU, "1", resMemory, "512"), nil)},
			containers: []corev1.Container{container("main", rl(resVGPU, "1", resMemory, "1024"), nil)},
			want: vgpu.PodRequest{GPUPolicy: vgpu.Binpack, Containers: []vgpu.ContainerRequest{
				mustContainer(t, "prep", 1, 512, true, 0),
				mustContainer(t, "main", 1, 1024, true, 0),
			}},
		},
		{
			name: "options come from annotations",
			annotations: map[string]string{
				"tessera.io/gpu-model-include": "A100, H100",
				"tessera.io/gpu-uuid-exclude":  "GPU-bad",
				"tessera.io/gpu-policy":        "spread",
			},
			containers: []corev1.Container{container("c", rl(resVGPU, "1", resMemory, "1024"), nil)},
			want: vgpu.PodRequest{
				GPUPolicy:  vgpu.Spread,
				Selector:   vgpu.Selector{IncludeModels: []string{"A100", "H100"}, ExcludeUUIDs: []string{"GPU-bad"}},
				Containers: []vgpu.ContainerRequest{mustContainer(t, "c", 1, 1024, true, 0)},
			},
		},
		{
			name:       "explicit zero vGPUs asks for nothing",
			containers: []corev1.Container{container("c", rl(resVGPU, "0"), nil)},
			want:       vgpu.PodRequest{GPUPolicy: vgpu.Binpack},
		},
		{
			name:       "zero vGPUs and zero cores ask for nothing",
			containers: []corev1.Container{container("c", rl(resVGPU, "0", resCores, "0"), nil)},
			want:       vgpu.PodRequest{GPUPolicy: vgpu.Binpack},
		},
		{name: "memory present but zero", containers: []corev1.Container{container("c", rl(resVGPU, "1", resMemory, "0"), nil)}, wantErr: "must be positive"},
		{name: "negative vGPUs", containers: []corev1.Container{container("c", rl(resVGPU, "-1"), nil)}, wantErr: "negative"},
		{name: "fractional vGPUs", containers: []corev1.Container{container("c", rl(resVGPU, "1500m"), nil)}, wantErr: "whole number"},
		{name: "memory without vGPU", containers: []corev1.Container{container("c", rl(resMemory, "1024"), nil)}, wantErr: "without any vGPU"},
		{name: "cores above 100 per GPU", containers: []corev1.Container{container("c", rl(resVGPU, "1", resCores, "150"), nil)}, wantErr: "cores"},
		{name: "request differs from limit", containers: []corev1.Container{container("c", rl(resVGPU, "1"), rl(resVGPU, "2"))}, wantErr: "differs from its limit"},
		{name: "absurd vGPU count", containers: []corev1.Container{container("c", rl(resVGPU, "1e9"), nil)}, wantErr: "at most"},
		{name: "absurd memory", containers: []corev1.Container{container("c", rl(resVGPU, "1", resMemory, "1e18"), nil)}, wantErr: "at most"},
		{name: "unknown policy", annotations: map[string]string{"tessera.io/gpu-policy": "random"}, wantErr: "tessera.io/gpu-policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Annotations: tt.annotations},
				Spec:       corev1.PodSpec{InitContainers: tt.init, Containers: tt.containers},
			}
			got, err := PodRequest(pod, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "ns/p") {
					t.Fatalf("err = %v, want one naming ns/p and containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PodRequest =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestPodRequestHonoursConfiguredNames(t *testing.T) {
	cfg := config.Default()
	cfg.Resources = config.ResourceNames{VGPU: "example.com/gpu", Memory: "example.com/gpumem", Cores: "example.com/gpucores"}
	cfg.AnnotationPrefix = "example.com"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"example.com/gpu-model-include": "H100"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			container("c", rl("example.com/gpu", "1", "example.com/gpumem", "100", resVGPU, "4"), nil),
		}},
	}
	got, err := PodRequest(pod, cfg)
	if err != nil {
		t.Fatalf("PodRequest: %v", err)
	}
	want := vgpu.PodRequest{GPUPolicy: vgpu.Binpack, Selector: vgpu.Selector{IncludeModels: []string{"H100"}},
		Containers: []vgpu.ContainerRequest{mustContainer(t, "c", 1, 100, true, 0)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PodRequest = %+v, want %+v (default names must be ignored)", got, want)
	}
}

func TestRequestFromResources(t *testing.T) {
	cfg := config.Default()
	tests := []struct {
		name    string
		rl      corev1.ResourceList
		asks    bool
		want    []vgpu.ContainerRequest
		wantErr string
	}{
		{name: "no Tessera resources", rl: rl("cpu", "2", "memory", "1Gi")},
		{name: "nil list", rl: nil},
		{name: "zero vGPUs", rl: rl(resVGPU, "0")},
		{
			name: "one replica is one container",
			rl:   rl("cpu", "1", resVGPU, "2", resMemory, "10240", resCores, "50"),
			asks: true,
			want: []vgpu.ContainerRequest{mustContainer(t, ReplicaContainerName, 2, 10240, true, 50)},
		},
		{name: "memory without vGPU", rl: rl(resMemory, "10"), wantErr: "without any vGPU"},
		{name: "negative memory", rl: rl(resVGPU, "1", resMemory, "-10"), wantErr: "negative"},
		{name: "zero memory", rl: rl(resVGPU, "1", resMemory, "0"), wantErr: "must be positive"},
		{name: "fractional cores", rl: rl(resVGPU, "1", resCores, "0.5"), wantErr: "whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, asks, err := RequestFromResources(tt.rl, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if asks != tt.asks || !reflect.DeepEqual(got.Containers, tt.want) {
				t.Errorf("RequestFromResources = %+v, %v; want %+v, %v", got.Containers, asks, tt.want, tt.asks)
			}
		})
	}
}
