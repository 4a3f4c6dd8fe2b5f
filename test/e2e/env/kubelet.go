package env

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
	"k8s.io/utils/ptr"

	"github.com/tessera-gpu/tessera/pkg/fakekubelet"
	"github.com/tessera-gpu/tessera/pkg/informerstop"
)

// ReasonAdmissionFailed is the kubelet's reason for a pod it rejects at
// admission because the device manager could not allocate its devices.
const ReasonAdmissionFailed = "UnexpectedAdmissionError"

// kubeletResync wakes the kubelet periodically, to retry a status write
// or a deletion that failed.
const kubeletResync = 2 * time.Second

// simKubelet is the pod side of one node's kubelet: it watches the pods
// bound to the node and admits them oldest first through the device
// plugin (pkg/fakekubelet speaks the real device-plugin gRPC API to it),
// then reports them Running and Ready, or Failed with the kubelet's reason
// and an event. It releases a pod's devices when the pod ends or is deleted,
// and finishes deletions as a kubelet does. It also publishes the node's
// vGPU slots in capacity and allocatable, as the kubelet's device manager
// does from the plugin's ListAndWatch.
type simKubelet struct {
	node    string
	client  kubernetes.Interface
	devices *fakekubelet.Kubelet
	vgpu    corev1.ResourceName

	mu   sync.Mutex
	pods map[types.UID]*podRecord
	// arrival numbers pods in the order the watch delivered them.
	arrival     map[types.UID]uint64
	nextArrival uint64
	wake        chan struct{}
}

// podRecord is what the kubelet did with one pod.
type podRecord struct {
	allocations []fakekubelet.ContainerAllocation
	rejected    string // why admission failed; "" when admitted
	reported    bool   // its status says so
}

func newSimKubelet(node string, client kubernetes.Interface, devices *fakekubelet.Kubelet, vgpu corev1.ResourceName) *simKubelet {
	return &simKubelet{node: node, client: client, devices: devices, vgpu: vgpu,
		pods: map[types.UID]*podRecord{}, arrival: map[types.UID]uint64{}, wake: make(chan struct{}, 1)}
}

func (k *simKubelet) admission(uid types.UID) ([]fakekubelet.ContainerAllocation, string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	r, ok := k.pods[uid]
	if !ok {
		return nil, "", false
	}
	return slices.Clone(r.allocations), r.rejected, true
}

// arrived records the watch order of a pod, which breaks creation-time ties
// as the kubelet's stable sort of each batch of new pods does.
func (k *simKubelet) arrived(uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.arrival[uid]; !ok {
		k.nextArrival++
		k.arrival[uid] = k.nextArrival
	}
}

func (k *simKubelet) arrivalOf(uid types.UID) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.arrival[uid]
}

func (k *simKubelet) poke() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// run serves until ctx ends.
func (k *simKubelet) run(ctx context.Context) error {
	logger := klog.FromContext(ctx).WithValues("node", k.node)
	ctx = klog.NewContext(ctx, logger)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: k.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: k.node})

	factory := informers.NewSharedInformerFactoryWithOptions(k.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", k.node).String()
	}))
	informer := factory.Core().V1().Pods().Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				k.arrived(pod.UID)
			}
			k.poke()
		},
		UpdateFunc: func(any, any) { k.poke() },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if pod, ok := obj.(*corev1.Pod); ok {
				k.forget(pod)
			}
		},
	}); err != nil {
		return fmt.Errorf("kubelet of %s: watch pods: %w", k.node, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	// After cancel: waits for the informer to stop, as long as a kubelet
	// would (informerstop: client-go's watch-list back-off ignores the stop).
	defer informerstop.Shutdown(logger, "pods of node "+k.node, factory, informerstop.Timeout)
	defer cancel()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return fmt.Errorf("kubelet of %s: sync pods: %w", k.node, ctx.Err())
	}
	k.forgetGone(ctx, informer.GetStore())
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { k.publishSlots(ctx) })

	ticker := time.NewTicker(kubeletResync)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.wake:
		case <-ticker.C:
		}
		k.sync(ctx, informer.GetStore(), recorder)
	}
}

// sync handles every pod of the node in the kubelet's order: by creation
// time, then by arrival (the device plugin relies on it).
func (k *simKubelet) sync(ctx context.Context, store cache.Store, recorder record.EventRecorder) {
	var pods []*corev1.Pod
	for _, obj := range store.List() {
		if pod, ok := obj.(*corev1.Pod); ok {
			pods = append(pods, pod)
		}
	}
	slices.SortFunc(pods, func(a, b *corev1.Pod) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), cmp.Compare(k.arrivalOf(a.UID), k.arrivalOf(b.UID)))
	})
	for _, pod := range pods {
		if ctx.Err() != nil {
			return
		}
		switch {
		case pod.DeletionTimestamp != nil:
			k.devices.ReleasePod(pod)
			k.finishDeletion(ctx, pod)
		case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
			k.devices.ReleasePod(pod)
		default:
			k.admit(ctx, pod, recorder)
		}
	}
}

// admit admits a pod once and reports the outcome until its status says so.
func (k *simKubelet) admit(ctx context.Context, pod *corev1.Pod, recorder record.EventRecorder) {
	logger := klog.FromContext(ctx)
	k.mu.Lock()
	r, seen := k.pods[pod.UID]
	k.mu.Unlock()
	if !seen {
		r = &podRecord{}
		allocs, err := k.devices.AdmitPod(ctx, pod)
		if err != nil && ctx.Err() != nil {
			// Stopped mid-admission: AdmitPod released what it took, and
			// nothing is recorded, so the restarted kubelet admits the
			// pod afresh, as a real one finds it not started.
			return
		}
		if err != nil {
			r.rejected = fmt.Sprintf("Allocate failed due to %v, which is unexpected", err)
			logger.Error(err, "Pod rejected at admission", "pod", klog.KObj(pod))
			recorder.Event(pod, corev1.EventTypeWarning, ReasonAdmissionFailed, r.rejected)
		} else {
			r.allocations = allocs
			logger.Info("Pod admitted", "pod", klog.KObj(pod), "gpuContainers", len(allocs))
		}
		k.mu.Lock()
		k.pods[pod.UID] = r
		k.mu.Unlock()
	}
	if r.reported {
		return
	}
	if err := k.reportStatus(ctx, pod, r.rejected); err != nil {
		logger.Error(err, "Reporting pod status failed; will retry", "pod", klog.KObj(pod))
		return
	}
	k.mu.Lock()
	r.reported = true
	k.mu.Unlock()
}

// reportStatus writes Running and Ready, or Failed with the reason, through
// the status subresource. A strategic merge patch with the pod's UID: no
// conflict with the device plugin's concurrent annotation patch, and no
// write to a pod that was replaced under the same name.
func (k *simKubelet) reportStatus(ctx context.Context, pod *corev1.Pod, rejected string) error {
	now := metav1.Now()
	status := corev1.PodStatus{HostIP: loopbackIP, HostIPs: []corev1.HostIP{{IP: loopbackIP}}, StartTime: &now}
	if rejected != "" {
		status.Phase, status.Reason, status.Message = corev1.PodFailed, ReasonAdmissionFailed, rejected
	} else {
		status.Phase = corev1.PodRunning
		for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			status.Conditions = append(status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
		}
		for _, c := range pod.Spec.Containers {
			status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr.To(true),
				State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": pod.UID}, "status": status})
	if err != nil {
		return fmt.Errorf("encode status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	_, err = k.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("report status of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// finishDeletion removes a terminating pod, as the kubelet does once its
// containers are gone (here at once: nothing runs).
func (k *simKubelet) finishDeletion(ctx context.Context, pod *corev1.Pod) {
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		klog.FromContext(ctx).Error(err, "Finishing the deletion of a pod failed; will retry", "pod", klog.KObj(pod))
	}
}

// forgetGone releases what the kubelet holds for pods that no longer exist:
// after a restart, the pods deleted while it was down, whose deletion no
// watch event told it about. The kubelet's device manager does the same
// with its checkpoint against the pods it finds.
func (k *simKubelet) forgetGone(ctx context.Context, store cache.Store) {
	k.mu.Lock()
	var gone []types.UID
	for uid := range k.pods {
		gone = append(gone, uid)
	}
	k.mu.Unlock()
	present := map[types.UID]bool{}
	for _, obj := range store.List() {
		if pod, ok := obj.(*corev1.Pod); ok {
			present[pod.UID] = true
		}
	}
	for _, uid := range gone {
		if !present[uid] {
			k.forget(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: uid}})
			klog.FromContext(ctx).Info("Released the devices of a pod deleted while the kubelet was down", "podUID", uid)
		}
	}
}

// forget drops a deleted pod's record and devices.
func (k *simKubelet) forget(pod *corev1.Pod) {
	k.devices.ReleasePod(pod)
	k.mu.Lock()
	delete(k.pods, pod.UID)
	delete(k.arrival, pod.UID)
	k.mu.Unlock()
}

// publishSlots keeps the Node's vGPU capacity and allocatable equal to the
// plugin's healthy devices, as the kubelet's device manager does.
func (k *simKubelet) publishSlots(ctx context.Context) {
	logger := klog.FromContext(ctx)
	published := -1
	for {
		err := k.devices.WaitFor(ctx, func(s fakekubelet.State) bool {
			return s.Devices != nil && healthySlots(s.Devices) != published
		})
		if err != nil {
			return // ctx ended
		}
		n := healthySlots(k.devices.Devices())
		q := resource.NewQuantity(int64(n), resource.DecimalSI).String()
		list := map[corev1.ResourceName]string{k.vgpu: q}
		patch, _ := json.Marshal(map[string]any{"status": map[string]any{"capacity": list, "allocatable": list}})
		if _, err := k.client.CoreV1().Nodes().Patch(ctx, k.node, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			logger.Error(err, "Publishing vGPU slots on the node failed; will retry", "slots", n)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		logger.Info("Published vGPU slots on the node", "resource", k.vgpu, "slots", n)
		published = n
	}
}

func healthySlots(devs []*pluginapi.Device) int {
	n := 0
	for _, d := range devs {
		if d.GetHealth() == pluginapi.Healthy {
			n++
		}
	}
	return n
}

// loopbackIP is every simulated node's address.
const loopbackIP = "127.0.0.1"

// SimulateKubelet runs the pod side of node's kubelet around devices (a
// fake kubelet the node's device plugin registered with) until ctx ends:
// for a node whose agent runs outside this package (test/install runs it
// from the chart's manifests). admission reports what it did with a pod.
func SimulateKubelet(ctx context.Context, node string, client kubernetes.Interface, devices *fakekubelet.Kubelet, vgpu corev1.ResourceName) (run func() error, admission func(types.UID) ([]fakekubelet.ContainerAllocation, string, bool)) {
	k := newSimKubelet(node, client, devices, vgpu)
	return func() error { return k.run(ctx) }, k.admission
}
