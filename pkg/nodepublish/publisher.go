// Package nodepublish keeps a Node object in step with its GPUs: the
// inventory annotation that the scheduler extender reads, and the memory and
// cores extended resources (capacity and allocatable) that kube-scheduler's
// node totals and Karmada's cluster summary read.
//
// It is level-triggered: every GPU change and every change to the Node leads
// to one comparison of the live Node with what it should carry, and a patch
// only where they differ. So something that removes the resources (a kubelet
// status update, a person with kubectl) is undone, and an unchanged Node is
// never rewritten.
package nodepublish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/informerstop"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// FieldManager names the node agent in the Node's managed fields.
const FieldManager = "tessera-node-agent"

// Event reasons on the Node.
const (
	ReasonPublished     = "GPUInventoryPublished"
	ReasonRestored      = "GPUInventoryRestored"
	ReasonPublishFailed = "GPUInventoryPublishFailed"
)

// DeviceSource is what the publisher needs from the GPU tracker.
type DeviceSource interface {
	// GPUs returns the node's GPUs with their current health.
	GPUs() []vgpu.GPU
	// Subscribe returns a channel that receives a value after every change
	// of GPUs(), and a function that ends the subscription.
	Subscribe() (<-chan struct{}, func())
}

// Options configure a Publisher.
type Options struct {
	NodeName  string
	Keys      annotations.Keys
	Resources config.ResourceNames
	// ResyncPeriod is how often the informer replays the cached Node, as a
	// safety net besides watch events; 0 means 10 minutes.
	ResyncPeriod time.Duration
	// RetryBaseDelay and RetryMaxDelay bound the exponential back-off after
	// a failed publish; 0 means 200ms and 1 minute.
	RetryBaseDelay time.Duration
	RetryMaxDelay  time.Duration
}

// Publisher publishes a node's GPUs on its Node object.
type Publisher struct {
	opts     Options
	names    names
	devices  DeviceSource
	client   kubernetes.Interface
	recorder record.EventRecorder

	published atomic.Bool
	// lastPublished is what the last successful sync left on the Node. Only
	// the single worker goroutine touches it; it tells a restore (the Node
	// lost what we had written) from a change of GPUs, for the logs.
	lastPublished *desiredState
}

// New checks the options and returns a Publisher; recorder may be nil, and
// then no events are recorded.
func New(opts Options, devices DeviceSource, client kubernetes.Interface, recorder record.EventRecorder) (*Publisher, error) {
	var errs []error
	if opts.NodeName == "" {
		errs = append(errs, errors.New("no node name"))
	}
	if opts.Keys.Inventory == "" {
		errs = append(errs, errors.New("no inventory annotation key"))
	}
	if opts.Resources.Memory == "" || opts.Resources.Cores == "" {
		errs = append(errs, errors.New("no memory or cores resource name"))
	}
	if devices == nil || client == nil {
		errs = append(errs, errors.New("no device source or no Kubernetes client"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("node publisher: %w", err)
	}
	if opts.ResyncPeriod == 0 {
		opts.ResyncPeriod = 10 * time.Minute
	}
	if opts.RetryBaseDelay == 0 {
		opts.RetryBaseDelay = 200 * time.Millisecond
	}
	if opts.RetryMaxDelay == 0 {
		opts.RetryMaxDelay = time.Minute
	}
	return &Publisher{
		opts: opts,
		names: names{
			inventoryKey: opts.Keys.Inventory,
			memory:       corev1.ResourceName(opts.Resources.Memory),
			cores:        corev1.ResourceName(opts.Resources.Cores),
			// The keys carry the compatibility profile (config.Keys).
			hami: opts.Keys.Compat.HAMi,
		},
		devices:  devices,
		client:   client,
		recorder: recorder,
	}, nil
}

// Published reports whether the Node has carried the GPUs at least once.
// It stays true through later API server outages: the device plugin keeps
// serving meanwhile, and the publisher keeps retrying.
func (p *Publisher) Published() bool { return p.published.Load() }

// Run publishes until ctx is cancelled, then stops every goroutine it
// started and returns nil. It returns an error only if it cannot start.
func (p *Publisher) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithName("nodepublish").WithValues("node", p.opts.NodeName)
	ctx = klog.NewContext(ctx, logger)

	// One key: there is one Node, and the queue collapses any burst of GPU
	// and Node events into one sync.
	key := p.opts.NodeName
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](p.opts.RetryBaseDelay, p.opts.RetryMaxDelay),
		&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(5), 20)},
	)
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: "tessera-node-publish"})

	factory := informers.NewSharedInformerFactoryWithOptions(p.client, p.opts.ResyncPeriod,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", p.opts.NodeName).String()
		}))
	informer := factory.Core().V1().Nodes().Informer()
	if _, err := informer.AddEventHandler(p.nodeHandler(queue)); err != nil {
		queue.ShutDown()
		return fmt.Errorf("publish inventory for node %s: watch node: %w", p.opts.NodeName, err)
	}

	changes, unsubscribe := p.devices.Subscribe()
	defer unsubscribe()

	ctx, cancel := context.WithCancel(ctx)
	factory.Start(ctx.Done())
	// Deferred calls run last-first: cancel stops the informers, then
	// Shutdown waits for their goroutines (bounded: see informerstop).
	defer informerstop.Shutdown(logger, "node "+p.opts.NodeName, factory, informerstop.Timeout)
	defer cancel()

	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		queue.ShutDown()
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-changes:
				if !ok {
					logger.Info("GPU tracker closed its subscription; GPU changes are no longer published")
					return
				}
				// Add, not AddRateLimited: a health change must reach the
				// Node promptly, not after a back-off.
				queue.Add(key)
			}
		}
	})

	queue.Add(key)
	for p.processNext(ctx, queue) {
	}
	cancel()
	wg.Wait()
	logger.V(2).Info("Node publisher stopped")
	return nil
}

// nodeHandler enqueues a sync whenever the Node does not carry what it
// should. The check runs on the informer's copy, so kubelet heartbeats that
// leave our fields alone cost no API call.
func (p *Publisher) nodeHandler(queue workqueue.TypedRateLimitingInterface[string]) cache.ResourceEventHandler {
	check := func(obj any) {
		node, ok := obj.(*corev1.Node)
		// A field selector is not honoured by every client (the fake
		// clientset ignores it), so the name is checked again.
		if !ok || node.Name != p.opts.NodeName {
			return
		}
		desired, err := computeDesired(p.devices.GPUs())
		if err != nil || !p.names.current(node, desired) {
			queue.Add(p.opts.NodeName)
		}
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    check,
		UpdateFunc: func(_, obj any) { check(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if node, ok := obj.(*corev1.Node); ok && node.Name == p.opts.NodeName {
				// The sync will find no Node and retry with back-off until
				// the kubelet registers it again.
				queue.Add(p.opts.NodeName)
			}
		},
	}
}

func (p *Publisher) processNext(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string]) bool {
	key, shutdown := queue.Get()
	if shutdown {
		return false
	}
	defer queue.Done(key)
	err := p.sync(ctx)
	switch {
	case err == nil:
		queue.Forget(key)
	case ctx.Err() != nil:
		// Shutting down: the failure is the cancellation, not worth a retry.
		queue.Forget(key)
	default:
		klog.FromContext(ctx).Error(err, "Publishing GPUs on the node failed; will retry", "retries", queue.NumRequeues(key))
		p.event(nil, corev1.EventTypeWarning, ReasonPublishFailed, err.Error())
		queue.AddRateLimited(key)
	}
	return true
}

// sync compares the live Node with what it should carry and patches the
// difference: the annotation through the Node, the resources through its
// status subresource (the only way status can be written).
func (p *Publisher) sync(ctx context.Context) error {
	name := p.opts.NodeName
	desired, err := computeDesired(p.devices.GPUs())
	if err != nil {
		return fmt.Errorf("publish inventory for node %s: %w", name, err)
	}
	// A live read, not the informer cache: right after our own patch the
	// cache may still hold the old Node, and trusting it would patch twice.
	node, err := p.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("publish inventory for node %s: get node: %w", name, err)
	}
	if p.names.current(node, desired) {
		p.finish(desired)
		return nil
	}
	restoring := p.lastPublished != nil && p.lastPublished.inventory == desired.inventory &&
		p.lastPublished.memory.Cmp(desired.memory) == 0 && p.lastPublished.cores.Cmp(desired.cores) == 0

	nodes := p.client.CoreV1().Nodes()
	opts := metav1.PatchOptions{FieldManager: FieldManager}
	if !p.names.annotationCurrent(node, desired) {
		patch, err := p.names.annotationPatch(desired)
		if err != nil {
			return fmt.Errorf("publish inventory for node %s: %w", name, err)
		}
		if node, err = nodes.Patch(ctx, name, types.MergePatchType, patch, opts); err != nil {
			return fmt.Errorf("publish inventory for node %s: patch annotation %s: %w", name, p.names.inventoryKey, err)
		}
	}
	if !p.names.resourcesCurrent(node, desired) {
		patch, err := p.names.resourcesPatch(desired)
		if err != nil {
			return fmt.Errorf("publish resources for node %s: %w", name, err)
		}
		if node, err = nodes.Patch(ctx, name, types.MergePatchType, patch, opts, "status"); err != nil {
			return fmt.Errorf("publish resources for node %s: patch status %s and %s: %w", name, p.names.memory, p.names.cores, err)
		}
	}

	reason, verb := ReasonPublished, "Published"
	if restoring {
		reason, verb = ReasonRestored, "Restored"
	}
	msg := fmt.Sprintf("%s %d GPUs (%d healthy): %s=%s, %s=%s", verb, desired.gpus, desired.healthy,
		p.names.memory, desired.memory.String(), p.names.cores, desired.cores.String())
	klog.FromContext(ctx).Info(verb+" GPU inventory on the node", "gpus", desired.gpus, "healthy", desired.healthy,
		string(p.names.memory), desired.memory.String(), string(p.names.cores), desired.cores.String())
	p.event(node, corev1.EventTypeNormal, reason, msg)
	p.finish(desired)
	return nil
}

func (p *Publisher) finish(d desiredState) {
	p.lastPublished = &d
	p.published.Store(true)
}

func (p *Publisher) event(node *corev1.Node, eventType, reason, msg string) {
	if p.recorder == nil {
		return
	}
	ref := &corev1.ObjectReference{Kind: "Node", APIVersion: "v1", Name: p.opts.NodeName}
	if node != nil {
		ref.UID = node.UID
	} else {
		// The kubelet's convention for Node events when the UID is unknown.
		ref.UID = types.UID(p.opts.NodeName)
	}
	p.recorder.Event(ref, eventType, reason, msg)
}
