package annotations

import (
	"slices"
	"strings"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestDecodePodOptions(t *testing.T) {
	k := DefaultKeys()
	cases := []struct {
		name    string
		ann     map[string]string
		want    PodOptions
		wantErr string
	}{
		{name: "defaults", ann: nil, want: PodOptions{NodePolicy: vgpu.Binpack, GPUPolicy: vgpu.Binpack}},
		{
			name: "all set",
			ann: map[string]string{
				k.NodePolicy: "spread", k.GPUPolicy: " Binpack ",
				k.GPUModelInclude: "A100, H100", k.GPUModelExclude: "A100-PCIE",
				k.GPUUUIDInclude: "GPU-1", k.GPUUUIDExclude: "GPU-2,GPU-3",
			},
			want: PodOptions{NodePolicy: vgpu.Spread, GPUPolicy: vgpu.Binpack, Selector: vgpu.Selector{
				IncludeModels: []string{"A100", "H100"}, ExcludeModels: []string{"A100-PCIE"},
				IncludeUUIDs: []string{"GPU-1"}, ExcludeUUIDs: []string{"GPU-2", "GPU-3"},
			}},
		},
		{name: "unknown policy", ann: map[string]string{k.GPUPolicy: "densest"}, wantErr: k.GPUPolicy},
		{name: "empty list", ann: map[string]string{k.GPUModelInclude: " , "}, wantErr: "names nothing"},
		{name: "control chars", ann: map[string]string{k.GPUUUIDExclude: "GPU-1\x00x"}, wantErr: "control characters"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodePodOptions(k, tc.ann)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.NodePolicy != tc.want.NodePolicy || got.GPUPolicy != tc.want.GPUPolicy ||
				!slices.Equal(got.Selector.IncludeModels, tc.want.Selector.IncludeModels) ||
				!slices.Equal(got.Selector.ExcludeModels, tc.want.Selector.ExcludeModels) ||
				!slices.Equal(got.Selector.IncludeUUIDs, tc.want.Selector.IncludeUUIDs) ||
				!slices.Equal(got.Selector.ExcludeUUIDs, tc.want.Selector.ExcludeUUIDs) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNewKeysRejectsBadPrefix(t *testing.T) {
	for _, p := range []string{"", "Tessera.IO", "a/b", "-x.io"} {
		if _, err := NewKeys(p); err == nil {
			t.Errorf("NewKeys(%q) accepted a bad prefix", p)
		}
	}
	k, err := NewKeys("gpu.example.com")
	if err != nil || k.Assignment != "gpu.example.com/gpu-assignment" {
		t.Fatalf("NewKeys = %+v, %v", k, err)
	}
}
