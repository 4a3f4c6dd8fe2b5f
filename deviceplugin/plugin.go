// Package deviceplugin is Tessera's kubelet device plugin.
//
// It advertises one kubelet device per GPU slot (vgpu.SlotID), maps every
// kubelet call to the exact container that the scheduler extender placed
// (through the pod's assignment annotation), and answers Allocate with that
// container's GPUs, its limits for the CUDA interception library and a
// usage-region directory of its own.
//
// The kubelet never says which pod an Allocate is for, so Allocate decides
// only what the slot IDs decide: which GPUs the container sees, and a
// directory of its own keyed by those slots (allocdir.go). Whose allocation
// it is comes from the kubelet's own record, its PodResources API, once the
// kubelet has recorded it (resolve.go); the limits are then written into that
// directory, and the interception library waits for them at CUDA
// initialisation. No guess by age decides any container's limits, and no
// node-wide lock is held across API calls.
package deviceplugin

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// SocketName is the plugin's socket in the device-plugin directory.
const SocketName = "tessera.sock"

// KubeletSocketName is the kubelet's registration socket in that directory.
const KubeletSocketName = "kubelet.sock"

// DeviceSource is where the plugin learns about the node's GPUs and their
// health (pkg/gpu's Tracker satisfies it).
type DeviceSource interface {
	// GPUs returns a copy of the node's GPUs with their current health.
	GPUs() []vgpu.GPU
	// Subscribe returns a channel that receives a (coalesced) signal
	// whenever health changes, and a function that ends the subscription.
	Subscribe() (<-chan struct{}, func())
}

// Options configure the plugin.
type Options struct {
	// ResourceName is the extended resource advertised, e.g. tessera.io/vgpu.
	ResourceName string
	// NodeName is the node this plugin runs on; only its pods are indexed.
	NodeName string
	// DevicePluginDir holds kubelet.sock and the plugin's own socket.
	DevicePluginDir string
	// StateDir (host path) holds ld.so.preload and per-container regions.
	StateDir string
	// HookLibrary is the host path of libtessera-hook.so.
	HookLibrary string
	// Keys are the annotation keys (assignment, allocated).
	Keys annotations.Keys
	// PodResourcesSocket is the kubelet's PodResources API socket
	// (/var/lib/kubelet/pod-resources/kubelet.sock).
	PodResourcesSocket string
	// LimitsWait is how long the interception library waits at CUDA
	// initialisation for the container's limits; 0 means DefaultLimitsWait.
	LimitsWait time.Duration
}

// DefaultLimitsWait is the library's default wait for a container's limits:
// far longer than a resolution takes (one PodResources List after the
// kubelet recorded the allocation), short enough that a broken node shows.
const DefaultLimitsWait = 60 * time.Second

// tuning holds intervals that production leaves at their defaults and tests
// shorten. They are not Options because no operator should need them.
type tuning struct {
	// matchWait is how long Allocate and GetPreferredAllocation wait for
	// the pod informer to catch up when no pod matches yet: the kubelet and
	// this plugin watch the API server separately, and the kubelet may
	// see a newly bound pod first.
	matchWait time.Duration
	// pollInterval is how often the kubelet socket and the plugin's own
	// socket are checked, in case a filesystem event was missed.
	pollInterval time.Duration
	// noWatch turns the filesystem watch off, so tests can prove that the
	// poll alone notices a restarted kubelet.
	noWatch bool
	// registerBackoffMax caps the wait between failed registrations.
	registerBackoffMax time.Duration
	// sweepInterval is how often stale region directories are removed.
	sweepInterval time.Duration
	// refreshTimeout bounds the List that brings the pod index up to date
	// before a kubelet call is matched, and each Get of a pod the kubelet
	// names that the index lacks.
	refreshTimeout time.Duration
	// fetchInterval is how often GetPreferredAllocation reads again a pod
	// the kubelet names that the API server did not return.
	fetchInterval time.Duration
	// patchTimeout bounds recording a container in the Allocated annotation.
	patchTimeout time.Duration
	// stopTimeout bounds a graceful stop of the gRPC server.
	stopTimeout time.Duration
	// resolveMinPoll and resolveMaxPoll bound the backoff of the resolver
	// while allocations wait; resolveResync is its pace otherwise.
	resolveMinPoll, resolveMaxPoll, resolveResync time.Duration
	// podResourcesTimeout bounds one PodResources List.
	podResourcesTimeout time.Duration
	// preStartWait bounds PreStartContainer's wait for a resolution,
	// within the kubelet's 30-second timeout of that call.
	preStartWait time.Duration
	// unresolvedTTL is how long an allocation nobody claims is kept (the
	// kubelet failed the pod after Allocate, say).
	unresolvedTTL time.Duration
}

func defaultTuning() tuning {
	return tuning{
		matchWait:           3 * time.Second,
		pollInterval:        5 * time.Second,
		registerBackoffMax:  30 * time.Second,
		sweepInterval:       10 * time.Minute,
		refreshTimeout:      5 * time.Second,
		fetchInterval:       50 * time.Millisecond,
		patchTimeout:        10 * time.Second,
		stopTimeout:         5 * time.Second,
		resolveMinPoll:      20 * time.Millisecond,
		resolveMaxPoll:      time.Second,
		resolveResync:       10 * time.Second,
		podResourcesTimeout: 5 * time.Second,
		preStartWait:        25 * time.Second,
		unresolvedTTL:       time.Hour,
	}
}

// Plugin is the device plugin of one node.
type Plugin struct {
	opts     Options
	devices  DeviceSource
	client   kubernetes.Interface
	recorder record.EventRecorder
	index    *podIndex
	regions  regionStore
	store    allocStore
	allocs   *allocTable
	// keyLocks serialise the file writes of each allocation key.
	keyLocks     podLocks
	podResources *podResourcesClient
	metrics      *pluginMetrics
	// patchLocks serialise the Allocated patches of each pod.
	patchLocks podLocks
	// records are the pods whose Allocated annotation is still to be written.
	records   *pendingRecords
	refresher podRefresher
	tune      tuning
	logger    klog.Logger
	running   atomic.Bool
	// registered is what the running server last registered with; nil
	// while it is not registered. Registered compares it with the sockets
	// on disk, so a restarted kubelet shows at once, not at the next
	// reconcile.
	registered atomic.Pointer[registration]
}

// New checks the options and builds a plugin; Run starts it.
func New(opts Options, devices DeviceSource, client kubernetes.Interface, recorder record.EventRecorder) (*Plugin, error) {
	if err := validateOptions(opts); err != nil {
		return nil, fmt.Errorf("device plugin options: %w", err)
	}
	switch {
	case devices == nil:
		return nil, errors.New("device plugin: no device source")
	case client == nil:
		return nil, errors.New("device plugin: no Kubernetes client")
	case recorder == nil:
		return nil, errors.New("device plugin: no event recorder")
	}
	return &Plugin{
		opts:         opts,
		devices:      devices,
		client:       client,
		recorder:     recorder,
		index:        newPodIndex(opts.NodeName, corev1.ResourceName(opts.ResourceName), opts.Keys),
		regions:      regionStore{stateDir: opts.StateDir},
		store:        allocStore{stateDir: opts.StateDir},
		allocs:       newAllocTable(),
		records:      newPendingRecords(),
		podResources: &podResourcesClient{socket: opts.PodResourcesSocket},
		metrics:      newPluginMetrics(opts.NodeName),
		tune:         defaultTuning(),
		logger:       klog.Background().WithName("deviceplugin"),
	}, nil
}

func validateOptions(o Options) error {
	var problems []string
	if o.ResourceName == "" || !strings.Contains(o.ResourceName, "/") {
		problems = append(problems, fmt.Sprintf("resource name %q is not an extended resource name (domain/name)", o.ResourceName))
	}
	if o.NodeName == "" {
		problems = append(problems, "no node name")
	}
	for _, d := range []struct{ what, path string }{
		{"device-plugin dir", o.DevicePluginDir},
		{"state dir", o.StateDir},
		{"hook library", o.HookLibrary},
		{"PodResources socket", o.PodResourcesSocket},
	} {
		if !filepath.IsAbs(d.path) {
			problems = append(problems, fmt.Sprintf("%s %q is not an absolute path", d.what, d.path))
		}
	}
	if o.Keys.Assignment == "" || o.Keys.Allocated == "" {
		problems = append(problems, "annotation keys for assignment and allocated are not set")
	}
	if o.LimitsWait < 0 || o.LimitsWait > 10*time.Minute {
		problems = append(problems, fmt.Sprintf("limits wait %v is outside 0-10m", o.LimitsWait))
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

func (p *Plugin) socketPath() string { return filepath.Join(p.opts.DevicePluginDir, SocketName) }

func (p *Plugin) kubeletSocketPath() string {
	return filepath.Join(p.opts.DevicePluginDir, KubeletSocketName)
}

// Run prepares the state directory, syncs the pod index, serves the plugin
// socket and keeps the plugin registered with the kubelet (again after every
// kubelet restart) until ctx is done; then it stops gracefully. It returns
// an error only when the plugin cannot start at all.
func (p *Plugin) Run(ctx context.Context) error {
	if !p.running.CompareAndSwap(false, true) {
		return errors.New("device plugin is already running")
	}
	defer p.running.Store(false)
	p.logger = klog.FromContext(ctx).WithName("deviceplugin")
	ctx = klog.NewContext(ctx, p.logger)
	// Cancelled on any return, so that the helpers started below stop
	// also when Run fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	if err := p.regions.prepare(); err != nil {
		return fmt.Errorf("prepare state dir %s: %w", p.opts.StateDir, err)
	}
	// Root-only before any allocation is restored: an older agent made it 0755.
	if err := ensureRootDir(p.store.root(), privateDirMode); err != nil {
		return fmt.Errorf("prepare state dir %s: %w", p.opts.StateDir, err)
	}
	stopInformer, err := p.startPodInformer(ctx)
	if err != nil {
		return err
	}
	defer stopInformer()
	defer p.podResources.close()
	// After the index synced (startPodInformer waits for its handler, not
	// only its store): restoring needs no pods, but the sweep that follows
	// deletes the allocations of every pod the index does not know.
	if err := p.restoreAllocations(ctx); err != nil {
		return err
	}
	p.sweepRegions(ctx)

	var wg sync.WaitGroup
	wg.Go(func() { p.sweepPeriodically(ctx) })
	wg.Go(func() { p.resolveLoop(ctx) })
	wg.Go(func() { p.recordLoop(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	p.logger.Info("Device plugin starting", "resource", p.opts.ResourceName, "node", p.opts.NodeName,
		"socket", p.socketPath())
	if err := p.serveAndRegister(ctx); err != nil {
		p.logger.Error(err, "Device plugin failed")
		return err
	}
	return nil
}

func (p *Plugin) sweepPeriodically(ctx context.Context) {
	t := time.NewTicker(p.tune.sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.sweepRegions(ctx)
		}
	}
}

// sweepRegions removes the allocations and region links of pods that no
// longer exist.
func (p *Plugin) sweepRegions(ctx context.Context) {
	p.sweepAllocations(ctx)
	removed, err := p.regions.sweep(p.index.hasPod)
	for _, uid := range removed {
		p.logger.V(2).Info("Removed region directory of a pod that no longer exists", "podUID", uid)
	}
	if err != nil {
		p.logger.Error(err, "Sweeping stale region directories")
	}
}
