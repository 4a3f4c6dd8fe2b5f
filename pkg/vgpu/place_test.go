package vgpu

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPlaceChoosesGPUs(t *testing.T) {
	tests := []struct {
		name    string
		devices []DeviceState
		req     PodRequest
		want    map[string][]string
	}{
		{
			name:    "unhealthy GPUs are skipped",
			devices: []DeviceState{dev(0, unhealthy), dev(1)},
			req:     pod(Binpack, ctr("c", 1, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-1"}},
		},
		{
			name:    "whole memory fits only an untouched GPU",
			devices: []DeviceState{dev(0, used(1, 1, 0)), dev(1, used(1, 0, 50))},
			req:     pod(Binpack, wholeCtr("c", 1, 0)),
			want:    map[string][]string{"c": {"GPU-1"}},
		},
		{
			name:    "no core cap fits a GPU whose cores are all taken",
			devices: []DeviceState{dev(0, used(1, 1024, 100))},
			req:     pod(Binpack, ctr("c", 1, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-0"}},
		},
		{
			name:    "a core share needs that many free cores",
			devices: []DeviceState{dev(0, used(1, 0, 80)), dev(1, used(1, 0, 70))},
			req:     pod(Binpack, ctr("c", 1, 1024, 30)),
			want:    map[string][]string{"c": {"GPU-1"}},
		},
		{
			name:    "binpack takes the fullest GPUs that fit",
			devices: []DeviceState{dev(0), dev(1, used(1, 40000, 0)), dev(2, used(1, 20000, 0)), dev(3, used(1, 81000, 0))},
			req:     pod(Binpack, ctr("c", 2, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-1", "GPU-2"}},
		},
		{
			name:    "spread takes the emptiest GPUs",
			devices: []DeviceState{dev(0, used(1, 1024, 0)), dev(1, used(1, 40000, 0)), dev(2), dev(3, used(1, 80000, 0))},
			req:     pod(Spread, ctr("c", 2, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-0", "GPU-2"}},
		},
		{
			name:    "an empty policy is binpack",
			devices: []DeviceState{dev(0), dev(1, used(1, 40000, 0))},
			req:     pod("", ctr("c", 1, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-1"}},
		},
		{
			name:    "ties go to the lower GPU index under binpack",
			devices: []DeviceState{dev(2), dev(1), dev(0, used(1, 81000, 0))},
			req:     pod(Binpack, ctr("c", 1, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-1"}},
		},
		{
			name:    "ties go to the lower GPU index under spread",
			devices: []DeviceState{dev(2), dev(1), dev(0, used(1, 1, 0))},
			req:     pod(Spread, ctr("c", 1, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-1"}},
		},
		{
			name:    "a container's GPUs are listed in index order",
			devices: []DeviceState{dev(3), dev(0, index(7)), dev(1)},
			req:     pod(Binpack, ctr("c", 3, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-1", "GPU-3", "GPU-0"}},
		},
		{
			name:    "containers of one pod may share a GPU",
			devices: []DeviceState{dev(0)},
			req:     pod(Binpack, ctr("a", 1, 30000, 50), ctr("b", 1, 30000, 50)),
			want:    map[string][]string{"a": {"GPU-0"}, "b": {"GPU-0"}},
		},
		{
			name:    "containers without GPUs get no entry",
			devices: []DeviceState{dev(0)},
			req:     pod(Binpack, ContainerRequest{Name: "sidecar"}, ctr("c", 1, 1024, 0)),
			want:    map[string][]string{"c": {"GPU-0"}},
		},
		{
			name:    "the model selector restricts the GPUs",
			devices: []DeviceState{dev(0, model("Tesla T4")), dev(1, used(1, 70000, 0))},
			req:     PodRequest{Containers: []ContainerRequest{ctr("c", 1, 1024, 0)}, Selector: Selector{IncludeModels: []string{"t4"}}},
			want:    map[string][]string{"c": {"GPU-0"}},
		},
		{
			name:    "the UUID exclude list removes a GPU binpack would prefer",
			devices: []DeviceState{dev(0), dev(1, used(1, 70000, 0))},
			req:     PodRequest{Containers: []ContainerRequest{ctr("c", 1, 1024, 0)}, Selector: Selector{ExcludeUUIDs: []string{"GPU-1"}}},
			want:    map[string][]string{"c": {"GPU-0"}},
		},
		{
			// Binpack's greedy choice puts a on GPU-1 and GPU-2 (least free),
			// leaving b only GPU-0; the exact search finds a={0,1}, b={0,2}.
			name:    "the exact search gets out of the greedy corner",
			devices: []DeviceState{dev(0, memory(2000)), dev(1, memory(1000)), dev(2, memory(1000))},
			req:     pod(Binpack, ctr("a", 2, 1000, 0), ctr("b", 2, 1000, 0)),
			want:    map[string][]string{"a": {"GPU-0", "GPU-1"}, "b": {"GPU-0", "GPU-2"}},
		},
		{
			// Hardest first: the whole-GPU container goes first and takes an
			// untouched GPU; the small one then packs onto the used GPU.
			name:    "mixed containers are placed hardest first",
			devices: []DeviceState{dev(0, used(1, 1000, 0)), dev(1)},
			req:     pod(Binpack, ctr("small", 1, 1000, 0), wholeCtr("big", 1, 0)),
			want:    map[string][]string{"small": {"GPU-0"}, "big": {"GPU-1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Place(tt.devices, tt.req)
			if err != nil {
				t.Fatalf("Place: %v", err)
			}
			if got := uuidsOf(p); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Place chose %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlaceGrantsShares(t *testing.T) {
	devices := []DeviceState{dev(0, memory(40960)), dev(1), dev(2, used(1, 1, 0))}
	p, err := Place(devices, pod(Spread, ctr("m", 1, 5000, 0), wholeCtr("w", 2, 25)))
	want := Placement{Containers: []ContainerPlacement{
		{Name: "m", Devices: []DeviceGrant{{UUID: "GPU-2", MemoryMiB: 5000}}},
		{Name: "w", Devices: []DeviceGrant{{UUID: "GPU-0", MemoryMiB: 40960, Cores: 25}, {UUID: "GPU-1", MemoryMiB: 81920, Cores: 25}}},
	}}
	if err != nil || !reflect.DeepEqual(p, want) {
		t.Errorf("Place = %+v, %v; want %+v", p, err, want)
	}
}

func TestPlaceUnfitMessages(t *testing.T) {
	eight := []DeviceState{
		dev(0, unhealthy), dev(1, unhealthy), dev(2, unhealthy),
		dev(3, model("Tesla T4")), dev(4, model("Tesla T4")),
		dev(5, used(1, 60000, 0)), dev(6, used(1, 50000, 0)), dev(7),
	}
	tests := []struct {
		name    string
		devices []DeviceState
		req     PodRequest
		want    string
	}{
		{
			name:    "too few GPUs with room, with every reason counted",
			devices: eight,
			req:     PodRequest{Containers: []ContainerRequest{ctr("train", 2, 40960, 0)}, Selector: Selector{IncludeModels: []string{"A100"}}},
			want:    "container train needs 2 GPUs with 40960 MiB free; 1 of 8 GPUs has room (3 unhealthy, 2 excluded by model selector, 2 without enough free memory)",
		},
		{
			name:    "whole GPUs and cores",
			devices: []DeviceState{dev(0, used(1, 1, 0)), dev(1, used(1, 0, 90)), dev(2, slots(1), used(1, 0, 0)), dev(3, unhealthy)},
			req:     PodRequest{Containers: []ContainerRequest{wholeCtr("w", 1, 20)}, Selector: Selector{ExcludeUUIDs: []string{"GPU-3"}}},
			want:    "container w needs 1 whole GPU with no memory in use and 20% cores free; 0 of 4 GPUs have room (1 unhealthy, 1 without a free slot, 1 with memory in use, 1 without enough free cores)",
		},
		{
			name:    "the UUID selector is named",
			devices: []DeviceState{dev(0), dev(1)},
			req:     PodRequest{Containers: []ContainerRequest{ctr("c", 1, 1024, 30)}, Selector: Selector{IncludeUUIDs: []string{"GPU-9"}}},
			want:    "container c needs 1 GPU with 1024 MiB and 30% cores free; 0 of 2 GPUs have room (2 excluded by UUID selector)",
		},
		{
			name: "a node without GPUs",
			req:  pod(Binpack, ctr("c", 1, 1024, 0)),
			want: "container c needs 1 GPU with 1024 MiB free; the node has no GPUs",
		},
		{
			name:    "the first container that cannot fit alone is named",
			devices: []DeviceState{dev(0)},
			req:     pod(Binpack, ctr("a", 1, 1024, 0), ctr("b", 2, 1024, 0)),
			want:    "container b needs 2 GPUs with 1024 MiB free; 1 of 1 GPUs has room",
		},
		{
			name:    "containers that fit alone but not together",
			devices: []DeviceState{dev(0, memory(1000)), dev(1, memory(1000)), dev(2, unhealthy)},
			req:     pod(Binpack, ctr("a", 2, 600, 0), ctr("b", 1, 600, 10)),
			want:    "containers a (2 GPUs with 600 MiB free), b (1 GPU with 600 MiB and 10% cores free) each fit alone but not together on the 2 GPUs the pod may use (free on them: 20 slots, 2000 MiB, 200% cores)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Place(tt.devices, tt.req)
			var unfit *Unfit
			if !errors.As(err, &unfit) {
				t.Fatalf("Place = %+v, %v; want an *Unfit", p, err)
			}
			if err.Error() != tt.want {
				t.Errorf("message\n got: %s\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestPlaceRejectsBadInput(t *testing.T) {
	tests := []struct {
		name    string
		devices []DeviceState
		req     PodRequest
		want    string
	}{
		{"no memory share", nodeOf(1), pod(Binpack, ctr("c", 1, 0, 0)), `container "c" asks for 0 MiB`},
		{"negative GPUs", nodeOf(1), pod(Binpack, ctr("c", -1, 1, 0)), `container "c" asks for -1 vGPUs`},
		{"cores over 100 per GPU", nodeOf(1), pod(Binpack, ctr("c", 1, 1, 101)), `101% cores per GPU`},
		{"negative cores", nodeOf(1), pod(Binpack, ctr("c", 1, 1, -1)), `-1% cores per GPU`},
		{"a GPU container without a name", nodeOf(1), pod(Binpack, ctr("", 1, 1, 0)), "GPU container 0 has no name"},
		{"two containers with one name", nodeOf(1), pod(Binpack, ctr("c", 1, 1, 0), ctr("c", 1, 1, 0)), `two GPU containers are named "c"`},
		{"a GPU listed twice", []DeviceState{dev(0), dev(0)}, pod(Binpack, ctr("c", 1, 1, 0)), "GPU GPU-0 is listed twice"},
		{"a GPU without UUID", []DeviceState{{GPU: GPU{Healthy: true}}}, pod(Binpack, ctr("c", 1, 1, 0)), "position 0 of the node's inventory has no UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Place(tt.devices, tt.req)
			var unfit *Unfit
			if err == nil || errors.As(err, &unfit) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Place error = %v; want a plain error containing %q", err, tt.want)
			}
		})
	}
}

func TestPlaceWithoutGPUContainers(t *testing.T) {
	p, err := Place(nil, pod(Binpack, ContainerRequest{Name: "app"}))
	if err != nil || len(p.Containers) != 0 {
		t.Errorf("Place = %+v, %v; want an empty placement", p, err)
	}
}

// TestGreedyCornerNeedsTheSearch proves that the "greedy corner" case above
// really is one: the greedy choice alone fails there.
func TestGreedyCornerNeedsTheSearch(t *testing.T) {
	devices := []DeviceState{dev(0, memory(2000)), dev(1, memory(1000)), dev(2, memory(1000))}
	req := pod(Binpack, ctr("a", 2, 1000, 0), ctr("b", 2, 1000, 0))
	gpus := usableGPUs(devices, &req.Selector)
	if _, ok := placeGreedy(gpus, &req, compareForPolicy(Binpack)); ok {
		t.Fatal("the greedy choice placed the pod; the case does not exercise the exact search")
	}
}
