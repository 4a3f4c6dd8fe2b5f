package annotations

import (
	"testing"
)

// The decoders read what anyone with write access to a Node or Pod can put
// there: they must return an error or a value that re-encodes to something
// they accept again, and never panic.

func FuzzDecodeInventory(f *testing.F) {
	f.Add(`{"version":"v1","gpus":[{"uuid":"GPU-a","index":0,"model":"A100","memoryMiB":40960,"slots":10,"cores":100,"numaNode":0,"healthy":true}]}`)
	f.Add(`{"version":"v1","gpus":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := DecodeInventory(s)
		if err != nil {
			return
		}
		again, err := EncodeInventory(inv)
		if err != nil {
			t.Fatalf("re-encode of accepted inventory failed: %v", err)
		}
		if _, err := DecodeInventory(again); err != nil {
			t.Fatalf("re-encoded inventory %s is rejected: %v", again, err)
		}
	})
}

func FuzzDecodeAssignment(f *testing.F) {
	f.Add(`{"version":"v1","node":"n","containers":[{"name":"c","devices":[{"uuid":"GPU-a","slotID":"GPU-a::1","memoryMiB":1,"cores":0}]}]}`)
	f.Add(`{"version":"v1","node":"n","containers":[{"name":"c","devices":[{"uuid":"::","slotID":"::::1","memoryMiB":1}]}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		a, err := DecodeAssignment(s)
		if err != nil {
			return
		}
		again, err := EncodeAssignment(a)
		if err != nil {
			t.Fatalf("re-encode of accepted assignment failed: %v", err)
		}
		if _, err := DecodeAssignment(again); err != nil {
			t.Fatalf("re-encoded assignment %s is rejected: %v", again, err)
		}
	})
}

func FuzzDecodeAllocated(f *testing.F) {
	f.Add(`{"version":"v1","containers":["a"]}`)
	f.Fuzz(func(t *testing.T, s string) {
		if a, err := DecodeAllocated(s); err == nil {
			if _, err := EncodeAllocated(a); err != nil {
				t.Fatalf("re-encode failed: %v", err)
			}
		}
	})
}

func FuzzDecodePodOptions(f *testing.F) {
	f.Add("binpack", "spread", "A100,H100", "GPU-1")
	f.Fuzz(func(t *testing.T, nodePolicy, gpuPolicy, models, uuids string) {
		k := DefaultKeys()
		opts, err := DecodePodOptions(k, map[string]string{
			k.NodePolicy: nodePolicy, k.GPUPolicy: gpuPolicy, k.GPUModelInclude: models, k.GPUUUIDExclude: uuids,
		})
		if err != nil {
			return
		}
		if opts.NodePolicy == "" || opts.GPUPolicy == "" {
			t.Fatalf("accepted options without a policy: %+v", opts)
		}
	})
}

func FuzzDecodeUsage(f *testing.F) {
	f.Add(`{"version":"v1","observedAt":"2026-12-07T20:00:00Z","containers":[{"namespace":"ns","pod":"p","container":"c","memoryUsedMiB":1024}]}`)
	f.Add(`{"version":"v1","observedAt":"2026-12-07T20:00:00Z","containers":null}`)
	f.Add(`{"version":"v1","containers":[{"namespace":"ns","pod":"p","container":"c","memoryUsedMiB":-1}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		u, err := DecodeUsage(s)
		if err != nil {
			return
		}
		again, err := EncodeUsage(u)
		if err != nil {
			t.Fatalf("re-encode of accepted usage failed: %v", err)
		}
		if _, err := DecodeUsage(again); err != nil {
			t.Fatalf("re-encoded usage %s is rejected: %v", again, err)
		}
	})
}
