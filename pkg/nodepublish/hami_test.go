package nodepublish

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// TestHAMiResources: under the HAMi profile the Node also carries HAMi's
// memory, cores and memory-percentage resources (healthy GPUs only), in
// capacity and allocatable; without it, only Tessera's two.
func TestHAMiResources(t *testing.T) {
	gpus := []vgpu.GPU{
		{UUID: "GPU-a", Index: 0, MemoryMiB: 81920, Slots: 10, Cores: 100, Healthy: true},
		{UUID: "GPU-b", Index: 1, MemoryMiB: 81920, Slots: 10, Cores: 100, Healthy: true},
		{UUID: "GPU-c", Index: 2, MemoryMiB: 81920, Slots: 10, Cores: 100, Healthy: false},
	}
	d, err := computeDesired(gpus)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		hami bool
		want map[string]string
	}{
		{"tessera only", false, map[string]string{"tessera.io/vgpu-memory": "163840", "tessera.io/vgpu-cores": "200"}},
		{"with HAMi's", true, map[string]string{
			"tessera.io/vgpu-memory": "163840", "tessera.io/vgpu-cores": "200",
			"nvidia.com/gpumem": "163840", "nvidia.com/gpucores": "200", "nvidia.com/gpumem-percentage": "200",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := names{inventoryKey: "k", memory: "tessera.io/vgpu-memory", cores: "tessera.io/vgpu-cores", hami: tt.hami}
			b, err := n.resourcesPatch(d)
			if err != nil {
				t.Fatal(err)
			}
			var patch struct {
				Status struct{ Capacity, Allocatable map[string]string }
			}
			if err := json.Unmarshal(b, &patch); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(patch.Status.Capacity, tt.want) || !reflect.DeepEqual(patch.Status.Allocatable, tt.want) {
				t.Errorf("patch %s, want capacity and allocatable %v", b, tt.want)
			}
		})
	}
}
