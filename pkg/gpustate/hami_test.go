package gpustate

import (
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

const (
	hamiGPU   = config.HAMiGPU
	hamiMem   = config.HAMiMemory
	hamiPct   = config.HAMiMemoryPercent
	hamiCores = config.HAMiCores
)

// hamiConfig is the configuration file `compat: hami` with more lines.
func hamiConfig(t testing.TB, more string) config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("compat: hami\n" + more))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestPodRequestHAMi(t *testing.T) {
	cfg := hamiConfig(t, "")
	c := func(name string, gpus int, mem int64, cores int) vgpu.ContainerRequest {
		return vgpu.ContainerRequest{Name: name, GPUs: gpus, MemoryMiBPerGPU: mem, CoresPerGPU: cores}
	}
	tests := []struct {
		name        string
		cfg         config.Config
		annotations map[string]string
		containers  []corev1.Container
		want        vgpu.PodRequest
		wantErr     string
	}{
		{
			name:       "gpumem and gpucores are per GPU, not totals",
			containers: []corev1.Container{container("main", rl(hamiGPU, "2", hamiMem, "3000", hamiCores, "30"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{c("main", 2, 3000, 30)}, GPUPolicy: vgpu.Spread},
		},
		{
			name:       "gpumem-percentage is resolved per GPU at placement",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiPct, "50"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{{Name: "main", GPUs: 1, MemoryPercent: 50}}, GPUPolicy: vgpu.Spread},
		},
		{
			name:       "100% is the whole memory",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiPct, "100"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{{Name: "main", GPUs: 1, WholeMemory: true}}, GPUPolicy: vgpu.Spread},
		},
		{
			name:       "gpumem wins over gpumem-percentage, as in HAMi",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiMem, "1024", hamiPct, "50"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{c("main", 1, 1024, 0)}, GPUPolicy: vgpu.Spread},
		},
		{
			name:       "gpumem 0 falls back to the percentage",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiMem, "0", hamiPct, "10"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{{Name: "main", GPUs: 1, MemoryPercent: 10}}, GPUPolicy: vgpu.Spread},
		},
		{
			name:       "only nvidia.com/gpu: HAMi's shipped defaults, the whole memory and no core cap",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{{Name: "main", GPUs: 1, WholeMemory: true}}, GPUPolicy: vgpu.Spread},
		},
		{
			name:       "defaultMemory and defaultCores fill what the pod leaves out",
			cfg:        hamiConfig(t, "hami: {defaultMemory: 4096, defaultCores: 20, nodeSchedulerPolicy: binpack, gpuSchedulerPolicy: binpack}"),
			containers: []corev1.Container{container("main", rl(hamiGPU, "2"), nil), container("side", rl(hamiGPU, "1", hamiCores, "5"), nil)},
			want:       vgpu.PodRequest{Containers: []vgpu.ContainerRequest{c("main", 2, 4096, 20), c("side", 1, 4096, 5)}, GPUPolicy: vgpu.Binpack},
		},
		{
			name: "Tessera's names keep their meaning beside the profile",
			containers: []corev1.Container{
				container("tessera", rl(hamiGPU, "2", resMemory, "3000", resCores, "30"), nil),
				container("hami", rl(hamiGPU, "2", hamiMem, "3000", hamiCores, "30"), nil),
			},
			want: vgpu.PodRequest{Containers: []vgpu.ContainerRequest{c("tessera", 2, 1500, 15), c("hami", 2, 3000, 30)}, GPUPolicy: vgpu.Spread},
		},
		{
			name:        "HAMi's annotations steer the placement",
			annotations: map[string]string{annotations.HAMiUseGPUType: "A100,H100", annotations.HAMiNoUseGPUUUID: "GPU-bad", annotations.HAMiGPUPolicy: "binpack"},
			containers:  []corev1.Container{container("main", rl(hamiGPU, "1", hamiMem, "1000"), nil)},
			want: vgpu.PodRequest{
				Containers: []vgpu.ContainerRequest{c("main", 1, 1000, 0)}, GPUPolicy: vgpu.Binpack,
				Selector: vgpu.Selector{IncludeModels: []string{"A100", "H100"}, ExcludeUUIDs: []string{"GPU-bad"}},
			},
		},
		{
			name:       "a request equal to its limit is fine, a different one is not",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiMem, "1000"), rl(hamiGPU, "1", hamiMem, "2000"))},
			wantErr:    "nvidia.com/gpumem request 2000 differs from its limit 1000",
		},
		{
			name:       "without nvidia.com/gpu: HAMi's webhook would add it, Tessera says so",
			containers: []corev1.Container{container("main", rl(hamiMem, "1000"), nil)},
			wantErr:    "without nvidia.com/gpu",
		},
		{
			name:       "mixing the vocabularies in one container",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiMem, "1000", resCores, "10"), nil)},
			wantErr:    "mixes Tessera's",
		},
		{
			name:       "task priority is not supported",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", config.HAMiPriority, "1"), nil)},
			wantErr:    "nvidia.com/priority is not supported",
		},
		{
			name:       "a percentage above 100",
			containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiPct, "150"), nil)},
			wantErr:    "150 is outside 1-100",
		},
		{
			name:       "cores above 100 per GPU",
			containers: []corev1.Container{container("main", rl(hamiGPU, "2", hamiCores, "101"), nil)},
			wantErr:    "more than 100% per GPU",
		},
		{
			name:        "MIG mode is named as unsupported",
			annotations: map[string]string{annotations.HAMiVGPUMode: "mig"},
			containers:  []corev1.Container{container("main", rl(hamiGPU, "1"), nil)},
			wantErr:     "nvidia.com/vgpu-mode: \"mig\" is not supported",
		},
		{
			name:        "topology-aware policy is named as unsupported",
			annotations: map[string]string{annotations.HAMiGPUPolicy: "topology-aware"},
			containers:  []corev1.Container{container("main", rl(hamiGPU, "1"), nil)},
			wantErr:     "hami.io/gpu-scheduler-policy: \"topology-aware\" is not supported",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if tt.cfg.Compat != "" {
				c = tt.cfg
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", Annotations: tt.annotations},
				Spec:       corev1.PodSpec{Containers: tt.containers},
			}
			got, err := PodRequest(pod, c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestHAMiNamesNeedTheProfile: without compat: hami, HAMi's names are not
// Tessera's resources, and its annotations are not read.
func TestHAMiNamesNeedTheProfile(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{annotations.HAMiVGPUMode: "mig"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{container("main", rl(hamiGPU, "1", hamiMem, "1000"), nil)}},
	}
	got, err := PodRequest(pod, config.Default())
	if err != nil || len(got.Containers) != 0 {
		t.Errorf("PodRequest without the profile = %+v, %v; want no GPU containers", got, err)
	}
}

// TestRequestFromResourcesHAMi: Karmada sends the sum of a pod's
// containers; under the profile it is read with HAMi's meaning.
func TestRequestFromResourcesHAMi(t *testing.T) {
	cfg := hamiConfig(t, "")
	tests := []struct {
		name string
		rl   corev1.ResourceList
		want vgpu.ContainerRequest
	}{
		{"per GPU memory", rl(hamiGPU, "2", hamiMem, "3000"), vgpu.ContainerRequest{Name: ReplicaContainerName, GPUs: 2, MemoryMiBPerGPU: 3000}},
		{"percentage", rl(hamiGPU, "1", hamiPct, "25", hamiCores, "30"), vgpu.ContainerRequest{Name: ReplicaContainerName, GPUs: 1, MemoryPercent: 25, CoresPerGPU: 30}},
		// Two containers of 60% each sum to 120: at most all of each GPU.
		{"summed percentages are capped", rl(hamiGPU, "2", hamiPct, "120", hamiCores, "160"), vgpu.ContainerRequest{Name: ReplicaContainerName, GPUs: 2, WholeMemory: true, CoresPerGPU: 100}},
		// The member's admission webhook will add defaultGPUNum to the
		// template's pods: Karmada is told what those pods take.
		{"memory without nvidia.com/gpu is defaultGPUNum GPUs", rl(hamiMem, "3000"), vgpu.ContainerRequest{Name: ReplicaContainerName, GPUs: 1, MemoryMiBPerGPU: 3000}},
		{"a changed defaultGPUNum", rl(hamiCores, "30"), vgpu.ContainerRequest{Name: ReplicaContainerName, GPUs: 3, WholeMemory: true, CoresPerGPU: 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cfg
			if tt.name == "a changed defaultGPUNum" {
				cfg = hamiConfig(t, "hami: {defaultGPUNum: 3}")
			}
			got, asks, err := RequestFromResources(tt.rl, cfg)
			if err != nil || !asks || len(got.Containers) != 1 || !reflect.DeepEqual(got.Containers[0], tt.want) {
				t.Errorf("RequestFromResources = %+v, %v, %v; want %+v", got, asks, err, tt.want)
			}
		})
	}
}

// TestRequestFromResourcesWithoutDefaultGPUNum: with defaultGPUNum 0 no
// webhook adds a GPU, so a replica without one is refused as a pod is.
func TestRequestFromResourcesWithoutDefaultGPUNum(t *testing.T) {
	_, _, err := RequestFromResources(rl(hamiMem, "3000"), hamiConfig(t, "hami: {defaultGPUNum: 0}"))
	if err == nil || !strings.Contains(err.Error(), "without nvidia.com/gpu") {
		t.Fatalf("err = %v, want the missing nvidia.com/gpu named", err)
	}
}

// TestHAMiDefaultGPUs: what HAMi's webhook adds, read by the one codec.
func TestHAMiDefaultGPUs(t *testing.T) {
	if config.MaxDefaultGPUNum != MaxGPUsPerContainer {
		t.Fatalf("config.MaxDefaultGPUNum %d != MaxGPUsPerContainer %d: a default the codec refuses", config.MaxDefaultGPUNum, MaxGPUsPerContainer)
	}
	hami := hamiConfig(t, "")
	tests := []struct {
		name     string
		cfg      config.Config
		limits   corev1.ResourceList
		requests corev1.ResourceList
		want     int
		wantErr  string
	}{
		{name: "gpumem only", limits: rl(hamiMem, "3000"), want: 1},
		{name: "gpumem-percentage only", limits: rl(hamiPct, "50"), want: 1},
		{name: "gpucores only", limits: rl(hamiCores, "30"), want: 1},
		{name: "a changed default", cfg: hamiConfig(t, "hami: {defaultGPUNum: 2}"), limits: rl(hamiMem, "3000", hamiCores, "10"), want: 2},
		{name: "nvidia.com/gpu already given", limits: rl(hamiGPU, "2", hamiMem, "3000")},
		{name: "nvidia.com/gpu 0 is given too", limits: rl(hamiGPU, "0", hamiMem, "3000")},
		{name: "no HAMi resources", limits: rl(resMemory, "3000", "cpu", "1")},
		{name: "Tessera's names are not HAMi's", limits: rl(resMemory, "3000", resCores, "10")},
		{name: "task priority alone is not memory or cores", limits: rl(config.HAMiPriority, "1")},
		// HAMi reads the limits only; the API server refuses an extended
		// resource given in requests alone.
		{name: "memory in requests only", requests: rl(hamiMem, "3000")},
		{name: "a count in requests only is not a limit", limits: rl(hamiMem, "3000"), requests: rl(hamiGPU, "1", hamiMem, "3000"), want: 1},
		{name: "defaultGPUNum 0 adds nothing", cfg: hamiConfig(t, "hami: {defaultGPUNum: 0}"), limits: rl(hamiMem, "3000")},
		{name: "without the profile nothing is added", cfg: config.Default(), limits: rl(hamiMem, "3000")},
		{name: "an unreadable quantity is an error", limits: rl(hamiMem, "1.5"), wantErr: `container "main": resource nvidia.com/gpumem: quantity 1500m is not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := hami
			if tt.cfg.Resources.VGPU != "" {
				cfg = tt.cfg
			}
			c := container("main", tt.limits, tt.requests)
			got, err := HAMiDefaultGPUs(&c, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("HAMiDefaultGPUs = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// FuzzPodRequestHAMi is FuzzPodRequest under compat: hami, over HAMi's
// resources and annotations, with Tessera's beside them.
func FuzzPodRequestHAMi(f *testing.F) {
	f.Add("1", "3000", "", "30", "", "A100", "spread", "")
	f.Add("2", "", "50", "", "", "", "", "hami-core")
	f.Add("1", "0", "0", "0", "", "", "topology-aware", "mig")
	f.Add("", "1024", "", "", "", "", "", "")
	f.Add("1", "", "100", "100", "1000", "a,,b", "BINPACK", "")
	f.Add("3", "9223372036854775807", "101", "1e3", "", "\x00", "", "mps")
	cfg := hamiConfig(f, "hami: {defaultMemory: 2048, defaultCores: 10, nodeSchedulerPolicy: spread, gpuSchedulerPolicy: spread}")
	f.Fuzz(func(t *testing.T, gpus, mem, pct, cores, tesseraMem, useType, policy, mode string) {
		pod, limits := fuzzPod(map[string]string{hamiGPU: gpus, hamiMem: mem, hamiPct: pct, hamiCores: cores, resMemory: tesseraMem},
			map[string]string{annotations.HAMiUseGPUType: useType, annotations.HAMiGPUPolicy: policy, annotations.HAMiVGPUMode: mode})
		if req, err := PodRequest(pod, cfg); err == nil {
			checkRequest(t, req)
			for _, c := range req.Containers {
				if _, ok := limits[corev1.ResourceName(hamiGPU)]; !ok {
					t.Fatalf("accepted a container without %s: %+v", hamiGPU, c)
				}
			}
		}
		if req, asks, err := RequestFromResources(limits, cfg); err == nil {
			checkRequest(t, req)
			if asks != (len(req.Containers) == 1) {
				t.Fatalf("asksForGPUs = %v with %d containers", asks, len(req.Containers))
			}
		}
	})
}
