/*
Lifted from Karmada v1.18.0 (https://github.com/karmada-io/karmada), licensed
under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
Copyright 2021-2022 The Karmada Authors.

Sources:
  - pkg/estimator/server/server.go: newPodInformer, supportedGVRs and the body
    of AccurateSchedulerEstimatorServer.GetUnschedulableReplicas.
  - pkg/estimator/server/eventhandlers.go: addAllEventHandlers and the
    scheduler-cache handlers (itself lifted by Karmada from Kubernetes'
    pkg/scheduler/eventhandlers.go, release-1.25).

Changes: the handlers hang off a small schedCacheFeeder instead of Karmada's
server struct (whose registry cannot take extra plugins, which is why Tessera
has its own server) and report when their initial events are delivered;
they change the cache through versionedCache, which counts changes so that
requests can share a snapshot (snapshots.go); errors are wrapped; logs are
structured.
*/

package server

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/informers"
	infov1 "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	karmadametrics "github.com/karmada-io/karmada/pkg/estimator/server/metrics"
	"github.com/karmada-io/karmada/pkg/estimator/server/replica"
	"github.com/karmada-io/karmada/pkg/util/fedinformer/genericmanager"
	"github.com/karmada-io/karmada/pkg/util/fedinformer/keys"
	"github.com/karmada-io/karmada/pkg/util/helper"
)

// supportedGVRs are the workloads GetUnschedulableReplicas can look up.
var supportedGVRs = []schema.GroupVersionResource{
	appsv1.SchemeGroupVersion.WithResource("deployments"),
}

// newPodInformer creates a shared index informer that returns only
// non-terminal pods.
func newPodInformer(cs kubernetes.Interface, resyncPeriod time.Duration) cache.SharedIndexInformer {
	selector := fmt.Sprintf("status.phase!=%v,status.phase!=%v", corev1.PodSucceeded, corev1.PodFailed)
	tweakListOptions := func(options *metav1.ListOptions) {
		options.FieldSelector = selector
	}
	return infov1.NewFilteredPodInformer(cs, metav1.NamespaceAll, resyncPeriod, cache.Indexers{}, tweakListOptions)
}

// workloadLookup is what GetUnschedulableReplicas needs to find a workload
// and its pods.
type workloadLookup struct {
	restMapper      meta.RESTMapper
	informerManager genericmanager.SingleClusterInformerManager
	replicaLister   *replica.ListerWrapper
}

// unschedulableReplicas counts the workload's pods that have been
// unschedulable for longer than the request's threshold.
func (w *workloadLookup) unschedulableReplicas(request *pb.UnschedulableReplicasRequest) (int32, error) {
	if request.Resource == nil {
		return 0, fmt.Errorf("resource is nil")
	}
	startTime := time.Now()
	gvk := schema.FromAPIVersionAndKind(request.Resource.ApiVersion, request.Resource.Kind)
	unstructObj, err := helper.GetObjectFromSingleClusterCache(w.restMapper, w.informerManager, &keys.ClusterWideKey{
		Group:     gvk.Group,
		Version:   gvk.Version,
		Kind:      gvk.Kind,
		Namespace: request.Resource.Namespace,
		Name:      request.Resource.Name,
	})
	karmadametrics.UpdateEstimatingAlgorithmLatency(err, karmadametrics.EstimatingTypeGetUnschedulableReplicas, karmadametrics.EstimatingStepGetObjectFromCache, startTime)
	if err != nil {
		return 0, fmt.Errorf("get workload %s %s/%s: %w", request.Resource.Kind, request.Resource.Namespace, request.Resource.Name, err)
	}
	startTime = time.Now()
	unschedulables, err := replica.GetUnschedulablePodsOfWorkload(unstructObj, time.Duration(request.UnschedulableThreshold), w.replicaLister)
	karmadametrics.UpdateEstimatingAlgorithmLatency(err, karmadametrics.EstimatingTypeGetUnschedulableReplicas, karmadametrics.EstimatingStepGetUnschedulablePodsOfWorkload, startTime)
	if err != nil {
		return 0, fmt.Errorf("list unschedulable pods of %s %s/%s: %w", request.Resource.Kind, request.Resource.Namespace, request.Resource.Name, err)
	}
	return unschedulables, nil
}

// schedCacheFeeder keeps Karmada's scheduler cache (what Karmada's stock
// plugins and the estimation snapshot read) in step with the informers.
type schedCacheFeeder struct {
	cache *versionedCache
}

func (f *schedCacheFeeder) addEventHandlers(informerFactory informers.SharedInformerFactory) ([]cache.InformerSynced, error) {
	pods, err := informerFactory.Core().V1().Pods().Informer().AddEventHandler(
		cache.FilteringResourceEventHandler{
			FilterFunc: func(obj any) bool {
				switch t := obj.(type) {
				case *corev1.Pod:
					return assignedPod(t)
				case cache.DeletedFinalStateUnknown:
					// The carried object may be stale, so we don't use it to check if
					// it's assigned or not. Attempting to cleanup anyways.
					_, ok := t.Obj.(*corev1.Pod)
					return ok
				default:
					klog.ErrorS(nil, "Cannot handle object in pod informer", "type", fmt.Sprintf("%T", obj))
					return false
				}
			},
			Handler: cache.ResourceEventHandlerFuncs{
				AddFunc:    f.addPod,
				UpdateFunc: f.updatePod,
				DeleteFunc: f.deletePod,
			},
		},
	)
	if err != nil {
		return nil, fmt.Errorf("add scheduler-cache handler for pods: %w", err)
	}
	nodes, err := informerFactory.Core().V1().Nodes().Informer().AddEventHandler(
		cache.ResourceEventHandlerFuncs{
			AddFunc:    f.addNode,
			UpdateFunc: f.updateNode,
			DeleteFunc: f.deleteNode,
		},
	)
	if err != nil {
		return nil, fmt.Errorf("add scheduler-cache handler for nodes: %w", err)
	}
	return []cache.InformerSynced{pods.HasSynced, nodes.HasSynced}, nil
}

func (f *schedCacheFeeder) addPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		klog.ErrorS(nil, "Cannot convert to *v1.Pod", "type", fmt.Sprintf("%T", obj))
		return
	}
	if err := f.cache.AddPod(pod); err != nil {
		klog.ErrorS(err, "Estimator cache AddPod failed", "pod", klog.KObj(pod))
	}
}

func (f *schedCacheFeeder) updatePod(oldObj, newObj any) {
	oldPod, ok := oldObj.(*corev1.Pod)
	if !ok {
		klog.ErrorS(nil, "Cannot convert oldObj to *v1.Pod", "type", fmt.Sprintf("%T", oldObj))
		return
	}
	newPod, ok := newObj.(*corev1.Pod)
	if !ok {
		klog.ErrorS(nil, "Cannot convert newObj to *v1.Pod", "type", fmt.Sprintf("%T", newObj))
		return
	}
	if err := f.cache.UpdatePod(oldPod, newPod); err != nil {
		klog.ErrorS(err, "Estimator cache UpdatePod failed", "pod", klog.KObj(oldPod))
	}
}

func (f *schedCacheFeeder) deletePod(obj any) {
	var pod *corev1.Pod
	switch t := obj.(type) {
	case *corev1.Pod:
		pod = t
	case cache.DeletedFinalStateUnknown:
		var ok bool
		if pod, ok = t.Obj.(*corev1.Pod); !ok {
			klog.ErrorS(nil, "Cannot convert to *v1.Pod", "type", fmt.Sprintf("%T", t.Obj))
			return
		}
	default:
		klog.ErrorS(nil, "Cannot convert to *v1.Pod", "type", fmt.Sprintf("%T", obj))
		return
	}
	if err := f.cache.RemovePod(pod); err != nil {
		klog.ErrorS(err, "Estimator cache RemovePod failed", "pod", klog.KObj(pod))
	}
}

func (f *schedCacheFeeder) addNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		klog.ErrorS(nil, "Cannot convert to *v1.Node", "type", fmt.Sprintf("%T", obj))
		return
	}
	f.cache.AddNode(node)
}

func (f *schedCacheFeeder) updateNode(oldObj, newObj any) {
	oldNode, ok := oldObj.(*corev1.Node)
	if !ok {
		klog.ErrorS(nil, "Cannot convert oldObj to *v1.Node", "type", fmt.Sprintf("%T", oldObj))
		return
	}
	newNode, ok := newObj.(*corev1.Node)
	if !ok {
		klog.ErrorS(nil, "Cannot convert newObj to *v1.Node", "type", fmt.Sprintf("%T", newObj))
		return
	}
	f.cache.UpdateNode(oldNode, newNode)
}

func (f *schedCacheFeeder) deleteNode(obj any) {
	var node *corev1.Node
	switch t := obj.(type) {
	case *corev1.Node:
		node = t
	case cache.DeletedFinalStateUnknown:
		var ok bool
		if node, ok = t.Obj.(*corev1.Node); !ok {
			klog.ErrorS(nil, "Cannot convert to *v1.Node", "type", fmt.Sprintf("%T", t.Obj))
			return
		}
	default:
		klog.ErrorS(nil, "Cannot convert to *v1.Node", "type", fmt.Sprintf("%T", obj))
		return
	}
	if err := f.cache.RemoveNode(node); err != nil {
		klog.ErrorS(err, "Estimator cache RemoveNode failed", "node", klog.KObj(node))
	}
}

// assignedPod selects pods that are assigned (scheduled and running).
func assignedPod(pod *corev1.Pod) bool {
	return len(pod.Spec.NodeName) != 0
}
