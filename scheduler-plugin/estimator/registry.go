package estimator

import (
	"fmt"
	"math"

	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	frameworkplugins "github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework/plugins/noderesource"
	frameworkruntime "github.com/karmada-io/karmada/pkg/estimator/server/framework/runtime"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// StockPlugin is Karmada's noderesource plugin as the framework builds it.
type StockPlugin interface {
	framework.EstimateReplicasPlugin
	framework.EstimateComponentsPlugin
}

// WithNodeResources makes the plugin answer for Karmada's noderesource
// plugin as well: what the framework would make of both plugins' answers
// (the lesser, results merged), for every request, Tessera resources or
// not. Memoised questions compute noderesource's answer themselves, per
// node and memoised like Tessera's (Karmada's clones every NodeInfo per
// question); requests with in-flight workloads, and a plugin WithoutMemo,
// ask stock itself.
func WithNodeResources(stock StockPlugin) Option {
	return func(p *Plugin) { p.stock = stock }
}

// Registry is Karmada's in-tree registry with its noderesource plugin
// replaced by Tessera's answering for both (WithNodeResources): the
// framework then gives the same answers as with both plugins registered,
// without Karmada's per-question clone of every node.
func Registry(cfg config.Config, gpus GPUStateSource, parallelism int, opts ...Option) (frameworkruntime.Registry, error) {
	registry := frameworkplugins.NewInTreeRegistry()
	if err := registry.Unregister(noderesource.Name); err != nil {
		return nil, fmt.Errorf("replace Karmada's %s plugin: %w", noderesource.Name, err)
	}
	factory := func(fh framework.Handle) (framework.Plugin, error) {
		pl, err := noderesource.New(fh)
		if err != nil {
			return nil, fmt.Errorf("create Karmada's %s plugin: %w", noderesource.Name, err)
		}
		stock, ok := pl.(StockPlugin)
		if !ok {
			return nil, fmt.Errorf("karmada's %s plugin (%T) does not estimate replicas and component sets", noderesource.Name, pl)
		}
		return New(cfg, gpus, parallelism, append(opts[:len(opts):len(opts)], WithNodeResources(stock))...)
	}
	if err := registry.Register(Name, factory); err != nil {
		return nil, fmt.Errorf("register the %s plugin: %w", Name, err)
	}
	return registry, nil
}

// answer is one plugin's answer as Karmada's framework sees it.
type answer struct {
	n   int32
	ret *framework.Result
}

// mergeAnswers is what Karmada's framework (RunEstimateReplicasPlugins,
// RunEstimateComponentsPlugins) makes of noderesource's answer and
// Tessera's: the least of those that succeeded or found no room (replicas:
// 0 once one failed), and the results merged.
func mergeAnswers(stock, tessera answer, replicas bool) (int32, *framework.Result) {
	out := int32(math.MaxInt32)
	for _, a := range [...]answer{stock, tessera} {
		if (a.ret.IsSuccess() || a.ret.IsUnschedulable()) && a.n < out {
			out = a.n
		}
		if replicas && a.ret.IsFailed() {
			out = 0
		}
	}
	return out, framework.PluginToResult{noderesource.Name: orSuccess(stock.ret), Name: orSuccess(tessera.ret)}.Merge()
}

// orSuccess is r, or a success for a nil result (which the framework counts
// as one, and Merge cannot read).
func orSuccess(r *framework.Result) *framework.Result {
	if r == nil {
		return framework.NewResult(framework.Success)
	}
	return r
}
