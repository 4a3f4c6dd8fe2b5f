// Package extender is Tessera's kube-scheduler extender. kube-scheduler
// calls it over HTTP (the JSON types of k8s.io/kube-scheduler/extender/v1)
// for every pod that requests a Tessera resource:
//
//   - filter keeps the nodes where the pod's containers fit per GPU (memory,
//     cores and slots of each GPU, not node totals), as decided by the one
//     fit algorithm, vgpu.Place, which the Karmada estimator also runs;
//   - prioritize scores nodes by the pod's node policy (binpack or spread);
//   - bind chooses the GPUs and slot IDs of every container, writes them to
//     the pod's assignment annotation, and only then binds the pod.
//
// It is node-cache capable: it keeps its own informer cache of Nodes and
// Pods, and derives each node's GPU state from the node's inventory
// annotation minus the assignments of the pods on it (package gpustate).
// Assignments it has written but not yet seen come back through the
// informer are kept in memory (in flight), so that concurrent binds never
// share capacity; after a restart the state is rebuilt from the pods'
// annotations, which are written before every binding. A filter call first
// waits, briefly, for the binds of the pods filtered before it, so that it
// sees their reservations (pending.go).
package extender

import (
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
)

// Event reasons the extender records on pods.
const (
	// ReasonInvalidRequest: the pod's GPU request or options cannot be read.
	ReasonInvalidRequest = "TesseraInvalidGPURequest"
	// ReasonUnschedulable: no candidate node has room for the pod's GPUs.
	ReasonUnschedulable = "TesseraNoGPUFit"
	// ReasonAssigned: GPUs were chosen and the pod bound.
	ReasonAssigned = "TesseraGPUsAssigned"
	// ReasonBindFailed: the assignment or binding could not be written.
	ReasonBindFailed = "TesseraBindFailed"
)

// Options configure an Extender.
type Options struct {
	// Client writes assignment annotations and Bindings.
	Client kubernetes.Interface
	// Informers supply the Node and Pod caches; the caller starts them.
	Informers informers.SharedInformerFactory
	// Config names the resources and the annotation prefix.
	Config config.Config
	// Recorder records events on pods; nil records none.
	Recorder record.EventRecorder
	// Metrics is where the extender reports; nil reports nowhere.
	Metrics *Metrics
	// IsLeader tells whether this replica may bind; nil means always. Only
	// the leader binds, because the in-flight record lives in its memory.
	IsLeader func() bool
	// BindWait bounds how long a filter call waits for the binds of the pods
	// filtered before it (see pendingBinds); 0 means DefaultBindWait, a
	// negative value turns the wait off.
	BindWait time.Duration
}

// Extender answers kube-scheduler's filter, prioritize and bind calls.
type Extender struct {
	client    kubernetes.Interface
	cfg       config.Config
	keys      annotations.Keys
	recorder  record.EventRecorder
	metrics   *Metrics
	isLeader  func() bool
	podLister corelisters.PodLister
	state     *registry
	pending   *pendingBinds
	bindWait  time.Duration
	synced    []cache.InformerSynced
}

// New builds an Extender and registers its handlers on the informers.
func New(opts Options) (*Extender, error) {
	if opts.Client == nil || opts.Informers == nil {
		return nil, errors.New("create scheduler extender: a client and an informer factory are required")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("create scheduler extender: %w", err)
	}
	e := &Extender{
		client:   opts.Client,
		cfg:      opts.Config,
		keys:     opts.Config.Keys(),
		recorder: opts.Recorder,
		metrics:  opts.Metrics,
		isLeader: opts.IsLeader,
		pending:  newPendingBinds(),
		bindWait: opts.BindWait,
	}
	if e.bindWait == 0 {
		e.bindWait = DefaultBindWait
	}
	if e.recorder == nil {
		e.recorder = &record.FakeRecorder{} // a nil channel: drops events
	}
	if e.isLeader == nil {
		e.isLeader = func() bool { return true }
	}
	e.state = newRegistry(e.keys)

	pods := opts.Informers.Core().V1().Pods()
	nodes := opts.Informers.Core().V1().Nodes()
	e.podLister = pods.Lister()
	podReg, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.onPod(obj) },
		UpdateFunc: func(_, obj any) { e.onPod(obj) },
		DeleteFunc: e.onPodDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("create scheduler extender: watch pods: %w", err)
	}
	nodeReg, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.onNode(obj) },
		UpdateFunc: func(_, obj any) { e.onNode(obj) },
		DeleteFunc: e.onNodeDelete,
	})
	if err != nil {
		return nil, fmt.Errorf("create scheduler extender: watch nodes: %w", err)
	}
	// The handlers' own HasSynced, not the informers': the state is
	// complete only once the handlers have processed the initial lists.
	e.synced = []cache.InformerSynced{podReg.HasSynced, nodeReg.HasSynced}
	return e, nil
}

// HasSynced reports whether the node and pod caches hold the initial lists.
func (e *Extender) HasSynced() bool {
	for _, s := range e.synced {
		if !s() {
			return false
		}
	}
	return true
}

func (e *Extender) onPod(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		klog.InfoS("Ignoring unexpected object in the pod informer", "type", fmt.Sprintf("%T", obj))
		return
	}
	e.state.setPod(pod)
	e.metrics.setInflight(e.state.inflightCount())
}

func (e *Extender) onPodDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		klog.InfoS("Ignoring unexpected object in a pod delete event", "type", fmt.Sprintf("%T", obj))
		return
	}
	e.state.deletePod(pod.UID)
	e.pending.settle(pod.UID)
	e.metrics.setInflight(e.state.inflightCount())
}

func (e *Extender) onNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		klog.InfoS("Ignoring unexpected object in the node informer", "type", fmt.Sprintf("%T", obj))
		return
	}
	e.state.setNode(node)
}

func (e *Extender) onNodeDelete(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		klog.InfoS("Ignoring unexpected object in a node delete event", "type", fmt.Sprintf("%T", obj))
		return
	}
	e.state.deleteNode(node.Name)
}

// podRef names a pod in logs and messages.
func podRef(pod *corev1.Pod) string { return pod.Namespace + "/" + pod.Name }
