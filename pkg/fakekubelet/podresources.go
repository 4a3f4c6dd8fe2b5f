package fakekubelet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	podresourcesapi "k8s.io/kubelet/pkg/apis/podresources/v1"
)

// knownPod is a pod as the kubelet's pod manager holds it, with the devices
// its device manager allocated (the PodResources API reads both).
type knownPod struct {
	namespace, name string
	uid             types.UID
	// containers are the regular containers in spec order: the
	// PodResources API lists those (and restartable init containers,
	// which this fake does not model), never ordinary init containers.
	containers []string
	// devices are each container's device IDs, set once its Allocate
	// returned: the kubelet records an allocation only after the plugin
	// answered, so PodResources never names an allocation in flight.
	devices map[string][]string
	// created orders the pods like the kubelet's pod manager lists them.
	seq uint64
}

// ServePodResources serves the kubelet's PodResources API (v1: List and Get)
// on a unix socket at path, from the pods this kubelet has admitted or is
// admitting, as the kubelet does from its pod manager and device manager. A
// Restart serves it again on the same path; Stop stops it.
func (k *Kubelet) ServePodResources(path string) error {
	k.mu.Lock()
	k.podResourcesPath = path
	k.mu.Unlock()
	return k.servePodResources()
}

func (k *Kubelet) servePodResources() error {
	k.mu.Lock()
	path := k.podResourcesPath
	k.mu.Unlock()
	if path == "" {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove old pod-resources socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on pod-resources socket %s: %w", path, err)
	}
	srv := grpc.NewServer()
	podresourcesapi.RegisterPodResourcesListerServer(srv, &podResources{kubelet: k})
	k.mu.Lock()
	k.podResourcesServer = srv
	k.mu.Unlock()
	k.wg.Go(func() { _ = srv.Serve(lis) })
	return nil
}

// PodResourcesPath is the PodResources socket ("" when not served).
func (k *Kubelet) PodResourcesPath() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.podResourcesPath
}

// podResources is the kubelet's PodResourcesLister service.
type podResources struct {
	podresourcesapi.UnimplementedPodResourcesListerServer
	kubelet *Kubelet
}

func (s *podResources) List(context.Context, *podresourcesapi.ListPodResourcesRequest) (*podresourcesapi.ListPodResourcesResponse, error) {
	k := s.kubelet
	k.mu.Lock()
	defer k.mu.Unlock()
	k.podResourcesCalls++
	pods := make([]*knownPod, 0, len(k.known))
	for _, p := range k.known {
		pods = append(pods, p)
	}
	slices.SortFunc(pods, func(a, b *knownPod) int { return cmp.Compare(a.seq, b.seq) })
	resp := &podresourcesapi.ListPodResourcesResponse{}
	for _, p := range pods {
		resp.PodResources = append(resp.PodResources, k.podResourcesLocked(p))
	}
	return resp, nil
}

func (s *podResources) Get(_ context.Context, req *podresourcesapi.GetPodResourcesRequest) (*podresourcesapi.GetPodResourcesResponse, error) {
	k := s.kubelet
	k.mu.Lock()
	defer k.mu.Unlock()
	k.podResourcesCalls++
	for _, p := range k.known {
		if p.namespace == req.GetPodNamespace() && p.name == req.GetPodName() {
			return &podresourcesapi.GetPodResourcesResponse{PodResources: k.podResourcesLocked(p)}, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "pod %s not found in namespace %s", req.GetPodName(), req.GetPodNamespace())
}

func (k *Kubelet) podResourcesLocked(p *knownPod) *podresourcesapi.PodResources {
	pr := &podresourcesapi.PodResources{Name: p.name, Namespace: p.namespace}
	for _, c := range p.containers {
		cr := &podresourcesapi.ContainerResources{Name: c}
		if ids, ok := p.devices[c]; ok {
			cr.Devices = []*podresourcesapi.ContainerDevices{{ResourceName: k.resourceName, DeviceIds: slices.Clone(ids)}}
		}
		pr.Containers = append(pr.Containers, cr)
	}
	return pr
}

// PodResourcesCalls counts List and Get calls served.
func (k *Kubelet) PodResourcesCalls() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.podResourcesCalls
}

// AddPod adds a pod to the pod manager without admitting it: PodResources
// lists it with no devices, as the kubelet does for a pod it is admitting
// (for tests that call the plugin themselves).
func (k *Kubelet) AddPod(pod *corev1.Pod) { k.addKnown(pod) }

// addKnown adds a pod to the pod manager, as the kubelet does just before
// it admits the pod: from then on PodResources lists it, with no devices.
func (k *Kubelet) addKnown(pod *corev1.Pod) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.known[pod.UID]; ok {
		return
	}
	k.nextSeq++
	p := &knownPod{namespace: pod.Namespace, name: pod.Name, uid: pod.UID, devices: map[string][]string{}, seq: k.nextSeq}
	for _, c := range pod.Spec.Containers {
		p.containers = append(p.containers, c.Name)
	}
	k.known[pod.UID] = p
}

// recordDevices records a container's allocation once Allocate returned.
func (k *Kubelet) recordDevices(uid types.UID, container string, ids []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p, ok := k.known[uid]; ok {
		p.devices[container] = slices.Clone(ids)
	}
	k.notifyLocked()
}

// AdmissionOrder is the order in which the kubelet admits pods that reach
// it in batches (each watch event delivers one or more new pods): batch by
// batch, each batch stable-sorted by creation time. So a pod that reaches
// the kubelet in a later batch is admitted after a younger pod of an
// earlier batch: the case a device plugin cannot decide by age.
func AdmissionOrder(batches [][]*corev1.Pod) []*corev1.Pod {
	var out []*corev1.Pod
	for _, b := range batches {
		sorted := slices.Clone(b)
		slices.SortStableFunc(sorted, func(x, y *corev1.Pod) int {
			return x.CreationTimestamp.Compare(y.CreationTimestamp.Time)
		})
		out = append(out, sorted...)
	}
	return out
}

// Record records, outside any admission, that a container of pod holds
// device IDs, as the kubelet does once an Allocate returned: for tests that
// call Allocate themselves, concurrently, as no real kubelet would.
func (k *Kubelet) Record(pod *corev1.Pod, container string, ids []string) {
	k.addKnown(pod)
	k.recordDevices(pod.UID, container, ids)
}
