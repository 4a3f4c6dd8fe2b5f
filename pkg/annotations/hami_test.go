package annotations

import (
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func hamiKeys() Keys {
	k := DefaultKeys()
	k.Compat = Compat{HAMi: true, NodePolicy: vgpu.Binpack, GPUPolicy: vgpu.Spread}
	return k
}

func TestDecodePodOptionsHAMi(t *testing.T) {
	k := hamiKeys()
	tests := []struct {
		name    string
		keys    Keys
		ann     map[string]string
		want    PodOptions
		wantErr string
	}{
		{
			name: "no annotations: HAMi's default policies",
			want: PodOptions{NodePolicy: vgpu.Binpack, GPUPolicy: vgpu.Spread},
		},
		{
			name: "HAMi's keys with HAMi's meaning",
			ann: map[string]string{
				HAMiUseGPUType: "Tesla V100-PCIE-32GB, NVIDIA A10", HAMiNoUseGPUType: "T4",
				HAMiUseGPUUUID: "GPU-a,GPU-b", HAMiNoUseGPUUUID: "GPU-c",
				HAMiNodePolicy: "spread", HAMiGPUPolicy: "binpack", HAMiVGPUMode: "hami-core", HAMiNUMABind: "false",
			},
			want: PodOptions{
				NodePolicy: vgpu.Spread, GPUPolicy: vgpu.Binpack,
				Selector: vgpu.Selector{
					IncludeModels: []string{"Tesla V100-PCIE-32GB", "NVIDIA A10"}, ExcludeModels: []string{"T4"},
					IncludeUUIDs: []string{"GPU-a", "GPU-b"}, ExcludeUUIDs: []string{"GPU-c"},
				},
			},
		},
		{
			name: "Tessera's keys keep working beside them",
			ann:  map[string]string{k.GPUModelInclude: "a100", HAMiGPUPolicy: "binpack"},
			want: PodOptions{NodePolicy: vgpu.Binpack, GPUPolicy: vgpu.Binpack, Selector: vgpu.Selector{IncludeModels: []string{"a100"}}},
		},
		{
			name: "without the profile HAMi's keys are not read",
			keys: DefaultKeys(),
			ann:  map[string]string{HAMiUseGPUType: "A100", HAMiVGPUMode: "mig"},
			want: PodOptions{NodePolicy: vgpu.Binpack, GPUPolicy: vgpu.Binpack},
		},
		{name: "both vocabularies for one option", ann: map[string]string{HAMiUseGPUType: "A100", k.GPUModelInclude: "H100"}, wantErr: "set one of them"},
		{name: "errors name the HAMi key the pod used", ann: map[string]string{HAMiNodePolicy: "fastest"}, wantErr: "annotation hami.io/node-scheduler-policy: unknown policy"},
		{name: "MIG", ann: map[string]string{HAMiVGPUMode: "mig"}, wantErr: "nvidia.com/vgpu-mode: \"mig\" is not supported"},
		{name: "MPS", ann: map[string]string{HAMiVGPUMode: "mps"}, wantErr: "nvidia.com/vgpu-mode: \"mps\" is not supported"},
		{name: "NUMA binding", ann: map[string]string{HAMiNUMABind: "true"}, wantErr: "nvidia.com/numa-bind"},
		{name: "topology-aware", ann: map[string]string{HAMiGPUPolicy: "Topology-Aware"}, wantErr: "hami.io/gpu-scheduler-policy: \"Topology-Aware\" is not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := k
			if tt.keys != (Keys{}) {
				keys = tt.keys
			}
			before := make(map[string]string, len(tt.ann))
			for key, v := range tt.ann {
				before[key] = v
			}
			got, err := DecodePodOptions(keys, tt.ann)
			if !reflect.DeepEqual(before, tt.ann) && tt.ann != nil {
				t.Errorf("DecodePodOptions changed the pod's annotations: %v", tt.ann)
			}
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

// FuzzDecodePodOptionsHAMi is FuzzDecodePodOptions under the HAMi profile,
// with each option given in either vocabulary.
func FuzzDecodePodOptionsHAMi(f *testing.F) {
	f.Add("binpack", "spread", "A100,H100", "GPU-1", "hami-core", "", true)
	f.Add("", "topology-aware", "", "", "mig", "true", false)
	f.Add("SPREAD", "", ",", " , ", "", "maybe", true)
	f.Fuzz(func(t *testing.T, nodePolicy, gpuPolicy, models, uuids, mode, numa string, hamiNames bool) {
		k := hamiKeys()
		ann := map[string]string{HAMiVGPUMode: mode, HAMiNUMABind: numa}
		if hamiNames {
			ann[HAMiNodePolicy], ann[HAMiGPUPolicy], ann[HAMiUseGPUType], ann[HAMiNoUseGPUUUID] = nodePolicy, gpuPolicy, models, uuids
		} else {
			ann[k.NodePolicy], ann[k.GPUPolicy], ann[k.GPUModelInclude], ann[k.GPUUUIDExclude] = nodePolicy, gpuPolicy, models, uuids
		}
		opts, err := DecodePodOptions(k, ann)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if (opts.NodePolicy != vgpu.Binpack && opts.NodePolicy != vgpu.Spread) || (opts.GPUPolicy != vgpu.Binpack && opts.GPUPolicy != vgpu.Spread) {
			t.Fatalf("accepted options without a valid policy: %+v", opts)
		}
		if len(opts.Selector.IncludeModels) == 0 || len(opts.Selector.ExcludeUUIDs) == 0 {
			t.Fatalf("accepted %q and %q but read no list: %+v", models, uuids, opts)
		}
	})
}
