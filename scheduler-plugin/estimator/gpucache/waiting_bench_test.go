package gpucache

import (
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// BenchmarkWaitingPodsUpsert is the cost one pod event adds to keep the
// waiting count: a bound pod (nearly every event in a large cluster) and an
// unbound GPU pod (whose request is parsed), in a tracker that already
// holds 50,000 pods' worth of keys.
func BenchmarkWaitingPodsUpsert(b *testing.B) {
	for _, tt := range []struct {
		name string
		node string
	}{{"bound", "n1"}, {"unbound", ""}} {
		b.Run(tt.name, func(b *testing.B) {
			w := NewWaitingPods(config.Default())
			for i := range 50000 {
				w.Upsert(gpuPod(fmt.Sprintf("p-%d", i), "", corev1.PodPending))
			}
			pod := gpuPod("p-7", tt.node, corev1.PodPending)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w.Upsert(pod)
			}
		})
	}
}
