package server

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	frameworkplugins "github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins"
	frameworkruntime "github.com/karmada-io/karmada/pkg/estimator/server/framework/runtime"
	estimatorservice "github.com/karmada-io/karmada/pkg/estimator/service"
	"github.com/karmada-io/karmada/pkg/util/grpcconnection"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/metrics"
	tc "github.com/tessera-gpu/tessera/scheduler-plugin/estimator/testcluster"
)

// Load of the gRPC benchmarks: callersPerProc x GOMAXPROCS concurrent
// callers (16 on the 2-CPU machine of docs/benchmarks.md) while
// churnPerSecond pod and node changes go through the caches.
const (
	callersPerProc = 8
	churnPerSecond = 100
)

// BenchmarkGRPC answers MaxAvailableReplicas and MaxAvailableComponentSets
// over gRPC on 127.0.0.1 (Karmada's own server and client connection
// code) on 5,000 and 50,000 nodes of 8 fragmented GPUs, with 16 callers
// while 100 changes a second are applied: "tessera" is this server,
// "stock" the server before Tessera's plugin answered for Karmada's
// noderesource (Karmada's in-tree plugins beside Tessera's), the anchor,
// on the same caches in the same run. ns/op is wall time per answer over
// all callers.
func BenchmarkGRPC(b *testing.B) {
	for _, size := range []int{5000, 50000} {
		b.Run(fmt.Sprintf("nodes=%d", size), func(b *testing.B) { benchGRPC(b, size) })
	}
}

func benchGRPC(b *testing.B, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	var c *tc.Churn
	clusterBytes := tc.HeapGrowth(func() any {
		nodes, pods := tc.Fragmented(1, size, 8, 4, []string{"a", "b"})
		var err error
		if c, err = tc.NewChurn(1, nodes, pods, ctx.Done()); err != nil {
			b.Fatal(err)
		}
		c.GPUs.Snapshot()
		return c
	})
	b.ReportMetric(0, "ns/op") // the parent's own line carries no time
	// The churn changes the cache through the counting wrapper, as the
	// server's informer handlers do.
	sched := newVersionedCache(c.Sched)
	c.Sched = sched
	cfg := config.Default()
	tessera, err := newFramework(cfg, c.GPUs, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	replicas := []*pb.ReplicaRequirements{
		(&pb.ReplicaRequirements{}).MustSetResourceRequest(quantities(resVGPU, "1", resMemory, "16384", resCores, "25", "cpu", "1", "memory", "2Gi")),
		(&pb.ReplicaRequirements{}).MustSetResourceRequest(quantities(resVGPU, "2", resMemory, "81920", "cpu", "4", "memory", "8Gi")),
		(&pb.ReplicaRequirements{NodeClaim: &pb.NodeClaim{NodeSelector: map[string]string{"zone": "a"}}}).MustSetResourceRequest(quantities(resVGPU, "1", resMemory, "8192", "cpu", "1")),
		(&pb.ReplicaRequirements{}).MustSetResourceRequest(quantities("cpu", "2", "memory", "4Gi")),
	}
	set := []*pb.Component{
		{Name: "launcher", Replicas: 1, ReplicaRequirements: (&pb.ComponentReplicaRequirements{}).MustSetResourceRequest(quantities("cpu", "1", "memory", "2Gi"))},
		{Name: "worker", Replicas: 8, ReplicaRequirements: (&pb.ComponentReplicaRequirements{}).MustSetResourceRequest(quantities(resVGPU, "1", resMemory, "40960", "cpu", "4", "memory", "8Gi"))},
	}
	var rpc estimatorservice.EstimatorClient
	serverBytes := tc.HeapGrowth(func() any {
		rpc = serveForBench(b, ctx, sched, c.GPUs, tessera)
		for _, rr := range replicas {
			askReplicas(b, rpc, rr)
		}
		askSets(b, rpc, set)
		return rpc
	})
	perNode := func(bytes uint64) float64 { return float64(bytes) / float64(size) }
	stock := serveForBench(b, ctx, sched, c.GPUs, stockFramework(b, cfg, c.GPUs))
	for _, srv := range []struct {
		name string
		rpc  estimatorservice.EstimatorClient
	}{{"stock", stock}, {"tessera", rpc}} {
		b.Run(srv.name+"/replicas_quiet", func(b *testing.B) {
			for b.Loop() {
				askReplicas(b, srv.rpc, replicas[0])
			}
		})
		b.Run(srv.name+"/replicas_loaded", func(b *testing.B) {
			b.ReportAllocs()
			runLoaded(b, c, func(n int) { askReplicas(b, srv.rpc, replicas[n%len(replicas)]) })
			if srv.name == "tessera" {
				b.ReportMetric(perNode(clusterBytes), "cluster-B/node")
				b.ReportMetric(perNode(serverBytes), "server-B/node")
			}
		})
		if srv.name == "stock" {
			// Karmada's first-fit simulation restarts every component at the
			// first node for every set: seconds per question at 5,000
			// nodes, so it is asked once, quiet, and not at 50,000.
			if size <= 5000 {
				b.Run(srv.name+"/sets_quiet", func(b *testing.B) {
					for b.Loop() {
						askSets(b, srv.rpc, set)
					}
				})
			}
			continue
		}
		b.Run(srv.name+"/sets_loaded", func(b *testing.B) {
			b.ReportAllocs()
			runLoaded(b, c, func(int) { askSets(b, srv.rpc, set) })
		})
	}
}

// serveForBench serves fw's answers over the caches on 127.0.0.1 with
// Karmada's gRPC server and client code, as startEnv does without the
// informers (the benchmark feeds the caches itself), until ctx ends.
func serveForBench(b *testing.B, ctx context.Context, sched *versionedCache, gpus *gpucache.Cache, fw framework.Framework) estimatorservice.EstimatorClient {
	b.Helper()
	cfg := config.Default()
	s := &Server{
		cfg:         Config{ClusterName: testCluster, Tessera: cfg},
		schedCache:  sched,
		snapshots:   newSnapshots(sched),
		gpuCache:    gpus,
		waitingPods: gpucache.NewWaitingPods(cfg),
		framework:   fw,
		freshness:   newFreshness(time.Now, func(context.Context) error { return nil }),
	}
	var err error
	if s.metrics, err = metrics.New(testCluster, s.gpuCache, s.freshness, s.waitingPods); err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		if err := s.Serve(ctx, lis, &grpcconnection.ServerConfig{}); err != nil {
			b.Error(err)
		}
	}()
	conn, err := (&grpcconnection.ClientConfig{}).DialWithTimeOut([]string{lis.Addr().String()}, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close() })
	return estimatorservice.NewEstimatorClient(conn)
}

// stockFramework is the server's framework before Tessera's plugin
// answered for Karmada's noderesource: Karmada's in-tree plugins beside
// Tessera's.
func stockFramework(b *testing.B, cfg config.Config, gpus estimator.GPUStateSource) framework.Framework {
	b.Helper()
	registry := frameworkplugins.NewInTreeRegistry()
	if err := registry.Register(estimator.Name, estimator.Factory(cfg, gpus, 0)); err != nil {
		b.Fatal(err)
	}
	fw, err := frameworkruntime.NewFramework(registry)
	if err != nil {
		b.Fatal(err)
	}
	return fw
}

func askReplicas(b *testing.B, rpc estimatorservice.EstimatorClient, rr *pb.ReplicaRequirements) {
	if _, err := rpc.MaxAvailableReplicas(context.Background(), &pb.MaxAvailableReplicasRequest{Cluster: testCluster, ReplicaRequirements: rr}); err != nil {
		b.Error(err)
	}
}

func askSets(b *testing.B, rpc estimatorservice.EstimatorClient, set []*pb.Component) {
	if _, err := rpc.MaxAvailableComponentSets(context.Background(), &pb.MaxAvailableComponentSetsRequest{Cluster: testCluster, Components: set, Namespace: "default"}); err != nil {
		b.Error(err)
	}
}

// runLoaded has callersPerProc x GOMAXPROCS goroutines call ask while one
// goroutine applies churnPerSecond changes to the caches.
func runLoaded(b *testing.B, c *tc.Churn, ask func(n int)) {
	rate := tc.ChurnWhile(churnPerSecond, c.Change, func() {
		b.SetParallelism(callersPerProc)
		var caller atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			n := int(caller.Add(1))
			for pb.Next() {
				ask(n)
				n++
			}
		})
	})
	b.ReportMetric(rate, "changes/s")
	b.ReportMetric(float64(callersPerProc*runtime.GOMAXPROCS(0)), "callers")
}
