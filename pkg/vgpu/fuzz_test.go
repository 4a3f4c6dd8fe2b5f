package vgpu

import (
	"errors"
	"fmt"
	"testing"
)

// FuzzParseSlotID: slot IDs come from the kubelet; any string must give a
// clean error or a result that SlotID turns back into the same ID.
func FuzzParseSlotID(f *testing.F) {
	for _, seed := range []string{"GPU-8c1e::3", "GPU-a::0", "::1", "GPU-a::", "GPU-a::-1", "GPU-a::b::2", "GPU-a:3", "", "x::99999999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		uuid, n, err := ParseSlotID(id)
		if err != nil {
			return
		}
		if uuid == "" || n < 0 {
			t.Fatalf("ParseSlotID(%q) = %q, %d without error", id, uuid, n)
		}
		if back, _, _ := ParseSlotID(SlotID(uuid, n)); back != uuid {
			t.Fatalf("ParseSlotID(SlotID(%q, %d)) = %q", uuid, n, back)
		}
	})
}

// byteReader turns fuzz input into small numbers; past the end it reads 0.
type byteReader []byte

func (b *byteReader) next(n int) int {
	if len(*b) == 0 {
		return 0
	}
	v := int((*b)[0]) % n
	*b = (*b)[1:]
	return v
}

// fuzzCase builds a tiny node and pod from data, including odd inputs the
// random population avoids: overcommitted or negative usage, GPUs without
// memory, slots or cores, invalid requests.
func fuzzCase(data []byte) ([]DeviceState, PodRequest) {
	b := byteReader(data)
	devices := make([]DeviceState, b.next(5))
	for i := range devices {
		devices[i] = DeviceState{
			GPU: GPU{
				UUID: fmt.Sprintf("GPU-%d", i), Index: b.next(4), Model: []string{"A100", "T4"}[b.next(2)],
				MemoryMiB: int64(b.next(5)) * 1000, Slots: b.next(5), Cores: b.next(3) * 50, Healthy: b.next(6) > 0,
			},
			Used: Usage{Slots: b.next(6) - 1, MemoryMiB: int64(b.next(7)-1) * 500, Cores: (b.next(5) - 1) * 50},
		}
	}
	var req PodRequest
	for i := range 1 + b.next(3) {
		req.Containers = append(req.Containers, ContainerRequest{
			Name: fmt.Sprintf("c%d", i), GPUs: b.next(4), MemoryMiBPerGPU: int64(b.next(5)) * 500,
			WholeMemory: b.next(4) == 0, CoresPerGPU: b.next(5) * 25,
			MemoryPercent: []int{0, 0, 0, 30, 50, 100}[b.next(6)], // 100 is invalid: WholeMemory's job
		})
	}
	if b.next(3) == 0 {
		req.Selector.ExcludeModels = []string{"t4"}
	}
	req.GPUPolicy = []Policy{Binpack, Spread, "odd"}[b.next(3)]
	return devices, req
}

// FuzzFit: on any tiny node and pod, nothing panics, MaxReplicas equals the
// brute force, Place succeeds iff a copy fits and then returns a valid
// placement, and NodeScore and Check agree.
func FuzzFit(f *testing.F) {
	f.Add([]byte{2, 0, 0, 4, 4, 2, 5, 0, 0, 0, 1, 0, 0, 4, 4, 2, 5, 0, 0, 0, 1, 1, 2, 2, 0, 1})
	f.Add([]byte{3, 1, 1, 2, 2, 1, 1, 5, 6, 4, 0, 0, 4, 4, 2, 1, 0, 0, 0, 2, 2, 3, 1, 1, 1, 3, 2, 2, 0, 2})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		devices, req := fuzzCase(data)
		name := fmt.Sprintf("devices %+v request %+v", devices, req)
		valid := req.Validate() == nil
		want := 0
		if valid {
			var slots, perCopy int
			for _, d := range devices {
				slots += d.Free().Slots
			}
			for _, c := range req.Containers {
				perCopy += c.GPUs
			}
			if perCopy == 0 {
				want = Unlimited
			} else {
				want = bruteForceMax(devices, req, slots/perCopy+1)
			}
		}
		got, exact := maxReplicas(devices, &req, searchBudget)
		if got != want || !exact {
			t.Fatalf("%s: MaxReplicas = %d (exact %v), brute force %d", name, got, exact, want)
		}
		p, err := Place(devices, req)
		var unfit *Unfit
		if cerr := Check(devices, req); (cerr == nil) != (err == nil) || (err != nil && cerr.Error() != err.Error()) {
			t.Fatalf("%s: Check = %v, Place = %v", name, cerr, err)
		}
		switch {
		case !valid && (err == nil || errors.As(err, &unfit)):
			t.Fatalf("%s: Place of an invalid request = %+v, %v", name, p, err)
		case valid && want > 0 && err != nil:
			t.Fatalf("%s: Place failed although a copy fits: %v", name, err)
		case valid && want == 0 && !errors.As(err, &unfit):
			t.Fatalf("%s: Place = %+v, %v; want *Unfit", name, p, err)
		case err == nil:
			checkPlacement(t, name, devices, req, p)
		}
		if score := NodeScore(devices, req, req.GPUPolicy); (score > 0) != (want > 0) || score > 100 {
			t.Fatalf("%s: NodeScore = %d with %d copies fitting", name, score, want)
		}
	})
}
