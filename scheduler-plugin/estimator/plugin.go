// Package estimator is Tessera's plugin for Karmada's accurate scheduler
// estimator framework. It answers how many replicas of a workload that asks
// for Tessera vGPUs fit in the member cluster: for every node that matches
// the workload's node selector, affinity and tolerations, the lesser of the
// exact GPU fit (vgpu.MaxReplicas, fragmentation-aware) and the node's
// ordinary resources, summed over the nodes. Requests without Tessera
// resources are left to Karmada's stock plugins.
package estimator

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	frameworkruntime "github.com/karmada-io/karmada/pkg/estimator/server/framework/runtime"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"
	"github.com/karmada-io/karmada/pkg/util/lifted/scheduler/framework/parallelize"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

// Name is the plugin's name in Karmada's registry and in its metrics.
const Name = "TesseraVGPUEstimator"

// GPUStateSource yields the current GPU state of the cluster's nodes.
type GPUStateSource interface {
	Snapshot() *gpucache.Snapshot
}

// Plugin implements Karmada's EstimateReplicasPlugin and
// EstimateComponentsPlugin.
type Plugin struct {
	cfg          config.Config
	gpus         GPUStateSource
	parallelizer parallelize.Parallelizer
	// tables identifies the nodes' state per request (nodetable.go); memo
	// keeps answers under it (memo.go), nil when WithoutMemo.
	tables tables
	memo   *memo
	// stock is Karmada's noderesource plugin when this plugin answers for
	// it too (WithNodeResources), else nil.
	stock StockPlugin
	// budgetCounter counts component-set answers past the search budget;
	// logOnce names each such workload in the log once.
	budgetCounter Counter
	logOnce       onceSet
}

var (
	_ framework.EstimateReplicasPlugin   = &Plugin{}
	_ framework.EstimateComponentsPlugin = &Plugin{}
)

// New returns the plugin. parallelism bounds the goroutines of one estimate
// (0 means Karmada's default).
func New(cfg config.Config, gpus GPUStateSource, parallelism int, opts ...Option) (*Plugin, error) {
	if gpus == nil {
		return nil, fmt.Errorf("create %s plugin: no GPU state source", Name)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create %s plugin: %w", Name, err)
	}
	p := &Plugin{cfg: cfg, gpus: gpus, parallelizer: parallelize.NewParallelizer(parallelism), memo: newMemo()}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Factory adapts New to Karmada's registry. Karmada's NewFramework ignores
// WithClientSet and WithParallelism (its Handle returns nil and 0), so
// everything the plugin needs comes through this closure instead.
func Factory(cfg config.Config, gpus GPUStateSource, parallelism int, opts ...Option) frameworkruntime.PluginFactory {
	return func(framework.Handle) (framework.Plugin, error) {
		return New(cfg, gpus, parallelism, opts...)
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// Estimate answers MaxAvailableReplicas for one replica template.
func (p *Plugin) Estimate(ctx context.Context, estCtx framework.ReplicaEstimationContext) (int32, *framework.Result) {
	if len(estCtx.AssumedWorkloads) == 0 && p.memo != nil {
		return p.estimateMemoised(ctx, estCtx)
	}
	n, ret := p.estimateGPUs(ctx, estCtx)
	if p.stock == nil {
		return n, ret
	}
	s, sret := p.stock.Estimate(ctx, estCtx)
	return mergeAnswers(answer{s, sret}, answer{n, ret}, true)
}

// estimateGPUs is Tessera's own answer computed from the nodes, without
// the memo.
func (p *Plugin) estimateGPUs(ctx context.Context, estCtx framework.ReplicaEstimationContext) (int32, *framework.Result) {
	req, err := ParseReplicaRequirements(estCtx.ReplicaRequirements, p.cfg)
	if err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	if !req.AsksForGPUs {
		return noTesseraResources()
	}
	view, err := p.view(ctx, estCtx.Snapshot)
	if err != nil {
		return 0, framework.AsResult(err)
	}
	var sim *simulation
	if len(estCtx.AssumedWorkloads) > 0 {
		// In-flight workloads the scheduler already sent here take their
		// share first, as Karmada's noderesource plugin deducts them.
		sim = newSimulation(view)
		if err := p.deductAssumed(ctx, sim, estCtx.AssumedWorkloads); err != nil {
			return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
		}
	}
	total := p.sumOverNodes(ctx, view, sim, &req)
	if err := ctx.Err(); err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	return clampInt32(total), framework.NewResult(framework.Success)
}

func noTesseraResources() (int32, *framework.Result) {
	return math.MaxInt32, framework.NewResult(framework.Noopperation, fmt.Sprintf("%s: no Tessera resources requested", Name))
}

// estimateMemoised is Estimate through the memo (in-flight workloads change
// from one request to the next and are never memoised). The shape is
// looked up before the request is decoded: an answered shape, or one known
// to ask for no Tessera resource, costs the node table's check and no
// decoding; a shape asking for none does not even read the nodes unless
// the plugin answers for Karmada's noderesource too.
func (p *Plugin) estimateMemoised(ctx context.Context, estCtx framework.ReplicaEstimationContext) (int32, *framework.Result) {
	buf := p.memo.keyBuffer()
	defer p.memo.keys.Put(buf)
	key, err := replicaKey(*buf, estCtx.ReplicaRequirements)
	*buf = key
	if err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	if p.stock == nil && p.memo.noGPUs(key) {
		return noTesseraResources()
	}
	view, err := p.view(ctx, estCtx.Snapshot)
	if err != nil {
		return 0, framework.AsResult(err)
	}
	if a := p.memo.replica(key); a != nil && a.epoch == view.table.epoch {
		return p.replicaResult(a)
	}
	req, err := ParseReplicaRequirements(estCtx.ReplicaRequirements, p.cfg)
	if err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	if !req.AsksForGPUs && p.stock == nil {
		p.memo.storeNoGPUs(key)
		return noTesseraResources()
	}
	a := p.memoEstimate(ctx, view, &req, key)
	if err := ctx.Err(); err != nil {
		return 0, framework.AsResult(fmt.Errorf("%s: %w", Name, err))
	}
	return p.replicaResult(a)
}

// replicaResult is the plugin's answer from a memoised one: Tessera's
// total, and with noderesource's the lesser (noderesource's alone for a
// shape without Tessera resources), as the framework takes it.
func (p *Plugin) replicaResult(a *replicaAnswer) (int32, *framework.Result) {
	success := framework.NewResult(framework.Success)
	switch {
	case p.stock == nil:
		return clampInt32(a.total), success
	case a.copies == nil:
		return a.stockTotal, success
	}
	return min(a.stockTotal, clampInt32(a.total)), success
}

// sumOverNodes adds up the per-node minimum over every matching node, in
// parallel: nodes are independent once the snapshot is fixed.
func (p *Plugin) sumOverNodes(ctx context.Context, view *clusterView, sim *simulation, req *Requirement) int64 {
	var total atomic.Int64
	p.parallelizer.Until(ctx, len(view.nodes), func(i int) {
		ni := view.nodes[i]
		if !req.matches(ni) {
			return
		}
		var n int64
		if sim != nil {
			n = sim.copiesOn(i, req)
		} else {
			n = req.copiesOn(ni, view.devices(i), nil)
		}
		if n > 0 {
			total.Add(min(n, math.MaxInt32))
		}
	})
	return total.Load()
}

// view lists the snapshot's nodes and takes the GPU state once, so that
// one estimate reads one consistent GPU snapshot.
func (p *Plugin) view(ctx context.Context, snapshot *schedcache.Snapshot) (*clusterView, error) {
	if snapshot == nil {
		return nil, fmt.Errorf("%s: the estimation context has no snapshot", Name)
	}
	nodes, err := snapshot.NodeInfos().List()
	if err != nil {
		return nil, fmt.Errorf("%s: list snapshot nodes: %w", Name, err)
	}
	gpus := p.gpus.Snapshot()
	return &clusterView{nodes: nodes, table: p.tables.forList(nodes, gpus, versionOf(ctx, snapshot))}, nil
}

// snapshotVersionKey carries a SnapshotVersion in a request's context.
type snapshotVersionKey struct{}

// SnapshotVersion names a snapshot's content: the snapshot has not been
// edited since it was brought up to date at Version, and no other content
// of it ever carries that version.
type SnapshotVersion struct {
	Snapshot *schedcache.Snapshot
	Version  uint64
}

// WithSnapshotVersion tells the plugin the version of the snapshot a
// request is estimated on (the server's snapshot pool knows it): a request
// on a snapshot and version the node table was last checked against skips
// reading every node's generation.
func WithSnapshotVersion(ctx context.Context, v SnapshotVersion) context.Context {
	return context.WithValue(ctx, snapshotVersionKey{}, v)
}

// versionOf is the version ctx carries for snapshot, or the zero version
// (nil snapshot: unknown).
func versionOf(ctx context.Context, snapshot *schedcache.Snapshot) SnapshotVersion {
	if v, ok := ctx.Value(snapshotVersionKey{}).(SnapshotVersion); ok && v.Snapshot == snapshot {
		return v
	}
	return SnapshotVersion{}
}

func clampInt32(n int64) int32 {
	if n > math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(n)
}
