package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

// benchNodes is a large member: 5,000 nodes of 8 GPUs, half A100 and half
// H100 nodes, with GPUs half used, a few of them unhealthy.
func benchNodes() []*gpucache.NodeGPUs {
	const nodes, perNode = 5000, 8
	out := make([]*gpucache.NodeGPUs, 0, nodes)
	for n := range nodes {
		model := "NVIDIA A100-SXM4-80GB"
		if n%2 == 1 {
			model = "NVIDIA H100 80GB HBM3"
		}
		devices := make([]vgpu.DeviceState, 0, perNode)
		for g := range perNode {
			used := vgpu.Usage{}
			if g%2 == 0 {
				used = vgpu.Usage{Slots: 3, MemoryMiB: 30 * gib, Cores: 60}
			}
			devices = append(devices, device(fmt.Sprintf("GPU-%d-%d", n, g), model, (n*perNode+g)%97 != 0, used))
		}
		out = append(out, &gpucache.NodeGPUs{Name: fmt.Sprintf("node-%d", n), Devices: devices})
	}
	return out
}

// BenchmarkScrape gathers every estimator metric of a 5,000-node member.
// changed: the cluster changed since the last scrape, so the snapshot's
// summaries are computed afresh (the snapshot's own assembly is not timed:
// the cache does it for estimates anyway). unchanged: a scrape between
// changes, which reads the summaries computed once.
func BenchmarkScrape(b *testing.B) {
	nodes := benchNodes()
	for _, changed := range []bool{true, false} {
		name := "unchanged"
		if changed {
			name = "changed"
		}
		b.Run(name, func(b *testing.B) {
			state := &benchState{s: gpucache.NewSnapshot(nodes, time.Unix(0, 0))}
			m, err := New("member-1", state, fixedAge(0), fixedWaiting(3))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := m.Registry().Gather(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if changed {
					b.StopTimer()
					state.s = gpucache.NewSnapshot(nodes, time.Unix(0, 0))
					b.StartTimer()
				}
				if _, err := m.Registry().Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type benchState struct{ s *gpucache.Snapshot }

func (b *benchState) Snapshot() *gpucache.Snapshot { return b.s }
