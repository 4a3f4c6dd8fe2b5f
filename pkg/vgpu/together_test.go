package vgpu

import "testing"

func TestFitTogether(t *testing.T) {
	small := pod(Binpack, ctr("small", 2, 16384, 0))
	large := pod(Binpack, ctr("large", 2, 40960, 30))
	// GPUs 0 and 1 have 40 GiB free; 2 and 3 have more memory but 20% cores.
	fragmented := []DeviceState{dev(0, used(1, 40960, 0)), dev(1, used(1, 40960, 0)), dev(2, used(1, 24576, 80)), dev(3, used(1, 24576, 80))}
	tests := []struct {
		name      string
		devices   []DeviceState
		groups    []Group
		fits      bool
		wantExact bool
	}{
		{"no groups fit anywhere", nil, nil, true, true},
		{"one group is MaxReplicas' question", nodeOf(2), []Group{{Req: pod(Binpack, ctr("a", 1, 40960, 0)), Copies: 4}}, true, true},
		{"one copy too many", nodeOf(2), []Group{{Req: pod(Binpack, ctr("a", 1, 40960, 0)), Copies: 5}}, false, true},
		{"groups of one demand share the GPUs (Gale–Ryser)", nodeOf(2), []Group{
			{Req: pod(Binpack, ctr("a", 2, 40960, 0)), Copies: 1}, {Req: pod(Binpack, ctr("b", 1, 40960, 0)), Copies: 2},
		}, true, true},
		{"the small group must leave the large one its GPUs", fragmented, []Group{{Req: small, Copies: 1}, {Req: large, Copies: 1}}, true, true},
		{"two large copies do not fit", fragmented, []Group{{Req: small, Copies: 1}, {Req: large, Copies: 2}}, false, true},
		{"zero copies need nothing", nodeOf(1), []Group{{Req: large, Copies: 0}}, true, true},
		{"an invalid group fits nowhere", nodeOf(2), []Group{{Req: pod(Binpack, ctr("bad", 1, 0, 0)), Copies: 1}}, false, true},
		{"different selectors are not decided", nodeOf(2), []Group{
			{Req: small, Copies: 1}, {Req: PodRequest{Containers: large.Containers, Selector: Selector{IncludeModels: []string{"A100"}}}, Copies: 1},
		}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fits, exact := FitTogether(tt.devices, tt.groups)
			if fits != tt.fits || exact != tt.wantExact {
				t.Errorf("FitTogether = %v, exact %v; want %v, exact %v", fits, exact, tt.fits, tt.wantExact)
			}
		})
	}
}
