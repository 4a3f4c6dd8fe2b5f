package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/fleet/fleettest"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// Fleet size of the benchmark: 10 members of 500 nodes with 8 GPUs, each
// node holding about 8 GPU pods (40,000 pods in all).
const (
	benchClusters    = 10
	benchNodes       = 500
	benchGPUs        = 8
	benchPodsPerNode = 8
)

// newBenchFleet serves the benchmark fleet from an in-process fake Karmada
// (the only place a faked API server is used for the fleet view).
func newBenchFleet(b *testing.B) *fleettest.FakeKarmada {
	k := fleettest.NewFakeKarmada(b)
	for i := range benchClusters {
		nodes, pods := testcluster.Fragmented(uint64(i), benchNodes, benchGPUs, benchPodsPerNode, []string{"a", "b"})
		k.SetMember(fleettest.ReadyCluster(fmt.Sprintf("member-%02d", i)), nodes, pods)
	}
	return k
}

// BenchmarkReadFleet is what `tessera fleet` does: list every member's
// nodes and pods through the cluster proxy (protobuf over loopback HTTP)
// and build the fleet's state. cpu-ms/op is the process's user+system CPU
// per read (the fake server's share included).
func BenchmarkReadFleet(b *testing.B) {
	k := newBenchFleet(b)
	r, err := NewReader(k.RESTConfig(), Options{Config: config.Default(), MemberTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var pods int
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		st, err := r.Read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		pods = 0
		for _, c := range st.Fleet.Clusters {
			if !c.Reachable {
				b.Fatalf("%s unreachable: %s", c.Name, c.Error)
			}
			pods += len(c.Pods)
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(pods), "pods")
}

// BenchmarkFleetJSON is `tessera fleet -o json` (and the page's data)
// without the reads: encoding the whole fleet's state.
func BenchmarkFleetJSON(b *testing.B) {
	k := newBenchFleet(b)
	r, err := NewReader(k.RESTConfig(), Options{Config: config.Default()})
	if err != nil {
		b.Fatal(err)
	}
	st, err := r.Read(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var size int
	for b.Loop() {
		data, err := json.Marshal(st.Fleet)
		if err != nil {
			b.Fatal(err)
		}
		size = len(data)
	}
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}

// BenchmarkFitFleet is `tessera fit` over the read state: the estimator's
// framework and plugin per member (built on the first Fit of a state,
// which is included: a new state per op), plus Karmada's general estimate.
func BenchmarkFitFleet(b *testing.B) {
	k := newBenchFleet(b)
	r, err := NewReader(k.RESTConfig(), Options{Config: config.Default()})
	if err != nil {
		b.Fatal(err)
	}
	req := shapeRequest(&testing.T{}, Shape{VGPUs: 1, Memory: "40Gi"})
	ctx := context.Background()
	states := make([]*State, 0, 8)
	for b.Loop() {
		b.StopTimer()
		if len(states) == 0 {
			for range cap(states) {
				st, err := r.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				states = append(states, st)
			}
		}
		st := states[len(states)-1]
		states = states[:len(states)-1]
		b.StartTimer()
		if _, err := st.Fit(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
