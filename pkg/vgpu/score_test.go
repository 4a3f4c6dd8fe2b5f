package vgpu

import "testing"

func TestNodeScore(t *testing.T) {
	empty := nodeOf(2)
	// Memory 25% used (one GPU half full), cores 0%: utilisation 12.5%.
	someUsed := []DeviceState{dev(0, used(1, 40960, 0)), dev(1)}
	full := nodeOf(2, used(10, 0, 0))
	req := pod(Binpack, ctr("c", 1, 1024, 0))
	tests := []struct {
		name    string
		devices []DeviceState
		req     PodRequest
		policy  Policy
		want    int
	}{
		{"binpack: an empty node scores lowest", empty, req, Binpack, 1},
		{"binpack: a used node scores higher", someUsed, req, Binpack, 13},
		{"spread: an empty node scores highest", empty, req, Spread, 100},
		{"spread: a used node scores lower", someUsed, req, Spread, 88},
		{"a node where the pod does not fit scores 0", full, req, Binpack, 0},
		{"also under spread", full, req, Spread, 0},
		{"an invalid request scores 0", empty, pod(Binpack, ctr("c", 1, 0, 0)), Binpack, 0},
		{"a mixed pod that fits", someUsed, pod(Binpack, wholeCtr("w", 1, 0), ctr("s", 1, 1000, 0)), Binpack, 13},
		{"a mixed pod that does not fit", someUsed, pod(Binpack, wholeCtr("w", 1, 0), ctr("s", 2, 50000, 0)), Binpack, 0},
		{"only the GPUs the pod may use count", []DeviceState{dev(0, used(1, 81920, 100), model("T4")), dev(1)},
			PodRequest{Containers: []ContainerRequest{ctr("c", 1, 1024, 0)}, Selector: Selector{ExcludeModels: []string{"T4"}}}, Binpack, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NodeScore(tt.devices, tt.req, tt.policy); got != tt.want {
				t.Errorf("NodeScore = %d, want %d", got, tt.want)
			}
		})
	}
}
