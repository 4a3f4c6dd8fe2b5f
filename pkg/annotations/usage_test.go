package annotations

import (
	"strings"
	"testing"
	"time"
)

func TestUsageCodec(t *testing.T) {
	at := time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC)
	good := Usage{ObservedAt: at, Containers: []ContainerUsage{
		{Namespace: "b", Pod: "p", Container: "c", MemoryUsedMiB: 2},
		{Namespace: "a", Pod: "p", Container: "c", MemoryUsedMiB: 1},
	}}
	raw, err := EncodeUsage(good)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	got, err := DecodeUsage(raw)
	if err != nil || !got.ObservedAt.Equal(at) || len(got.Containers) != 2 || got.Containers[0].Namespace != "a" {
		t.Fatalf("round trip of %s: %+v, %v", raw, got, err)
	}
	tests := []struct {
		name, raw, want string
	}{
		{"unknown field", `{"version":"v1","observedAt":"2026-12-07T20:00:00Z","containers":[],"extra":1}`, "unknown field"},
		{"future version", `{"version":"v2","containers":[]}`, `version "v2"`},
		{"negative use", `{"version":"v1","containers":[{"namespace":"a","pod":"p","container":"c","memoryUsedMiB":-1}]}`, "out of range"},
		{"bad namespace", `{"version":"v1","containers":[{"namespace":"A/..","pod":"p","container":"c","memoryUsedMiB":1}]}`, "not a DNS label"},
		{"twice", `{"version":"v1","containers":[{"namespace":"a","pod":"p","container":"c","memoryUsedMiB":1},{"namespace":"a","pod":"p","container":"c","memoryUsedMiB":2}]}`, "reported twice"},
		{"trailing", `{"version":"v1","containers":[]} {}`, "trailing data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeUsage(tc.raw); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
