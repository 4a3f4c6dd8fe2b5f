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

// nodePods is the node's pods with their assignments, from an informer on
// the pods bound to the node (shared by the metrics and the usage report),
// and the reader of each container's usage region.
type nodePods struct {
	factory informers.SharedInformerFactory
	pods    nodemetrics.PodSource
	regions nodemetrics.RegionReader
}

// newNodePods builds the pod informer, unstarted (Run starts it).
func newNodePods(cfg config.Config, node string, client kubernetes.Interface) (*nodePods, error) {
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
		return nil, fmt.Errorf("pods of node %s: set pod informer transform: %w", node, err)
	}
	stateDir := cfg.Node.StateDir
	return &nodePods{
		factory: factory,
		pods: syncedPods{
			PodSource: nodemetrics.ListerPods{Lister: pods.Lister(), Keys: cfg.Keys(), NodeName: node},
			synced:    informer.HasSynced,
			node:      node,
		},
		regions: nodemetrics.RegionFiles(func(podUID, container string) (string, error) {
			return deviceplugin.RegionFile(stateDir, podUID, container)
		}),
	}, nil
}

// newMetricsHandler builds the /metrics handler of the node: the GPUs from
// tracker, the pods and each container's use from src, and extra
// collectors (the device plugin's allocation metrics).
func newMetricsHandler(node string, gpus nodemetrics.GPUSource, src *nodePods, extra ...prometheus.Collector) (http.Handler, error) {
	collector, err := nodemetrics.New(nodemetrics.Options{
		NodeName: node,
		GPUs:     gpus,
		Pods:     src.pods,
		Regions:  src.regions,
	})
	if err != nil {
		return nil, fmt.Errorf("node metrics of %s: %w", node, err)
	}
	handler, err := nodemetrics.NewHandler(collector, extra...)
	if err != nil {
		return nil, fmt.Errorf("node metrics of %s: %w", node, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	return mux, nil
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
