package app

import (
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/tessera-gpu/tessera/deviceplugin"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
)

// newMetricsHandler builds the /metrics handler of the node: the GPUs from
// tracker, the pods from an informer on the pods bound to the node, and
// each container's use from the region file the device plugin made for it.
// It returns the informer factory unstarted; Run starts it.
func newMetricsHandler(cfg config.Config, node string, gpus nodemetrics.GPUSource, client kubernetes.Interface, extra ...prometheus.Collector) (http.Handler, informers.SharedInformerFactory, error) {
	selector := fields.OneTermEqualSelector("spec.nodeName", node).String()
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = selector }))
	pods := factory.Core().V1().Pods()
	informer := pods.Informer() // Registers the informer, so that Start runs it.
	// Managed fields are large and unused here.
	if err := informer.SetTransform(func(obj any) (any, error) {
		if pod, ok := obj.(*corev1.Pod); ok {
			pod.ManagedFields = nil
		}
		return obj, nil
	}); err != nil {
		return nil, nil, fmt.Errorf("node metrics of %s: set pod informer transform: %w", node, err)
	}
	stateDir := cfg.Node.StateDir
	collector, err := nodemetrics.New(nodemetrics.Options{
		NodeName: node,
		GPUs:     gpus,
		Pods: syncedPods{
			PodSource: nodemetrics.ListerPods{Lister: pods.Lister(), Keys: cfg.Keys(), NodeName: node},
			synced:    informer.HasSynced,
			node:      node,
		},
		Regions: nodemetrics.RegionFiles(func(podUID, container string) (string, error) {
			return deviceplugin.RegionFile(stateDir, podUID, container)
		}),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("node metrics of %s: %w", node, err)
	}
	handler, err := nodemetrics.NewHandler(collector, extra...)
	if err != nil {
		return nil, nil, fmt.Errorf("node metrics of %s: %w", node, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	return mux, factory, nil
}

// syncedPods refuses to list pods before the informer has listed them once:
// an empty cache would read as "nothing allocated" and show every GPU free.
// The collector reports the error and still serves capacity and health.
type syncedPods struct {
	nodemetrics.PodSource
	synced cache.InformerSynced
	node   string
}

func (s syncedPods) AssignedPods() ([]nodemetrics.AssignedPod, []nodemetrics.SkippedPod, error) {
	if !s.synced() {
		return nil, nil, fmt.Errorf("pods of node %s are not listed yet (pod cache not synced)", s.node)
	}
	return s.PodSource.AssignedPods()
}
