// Package usagereport publishes what the containers on a node really use
// of their GPUs (from their usage regions) as the Node's gpu-usage
// annotation, so that a reader of the API, such as the fleet view through
// Karmada's cluster proxy, can show observed use beside the limits without
// reaching the node. Prometheus has the same figures per scrape; this copy
// is written only when it changes, or when it grows old.
package usagereport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/nodemetrics"
)

// Defaults for Options.
const (
	// DefaultInterval is how often the regions are read.
	DefaultInterval = 30 * time.Second
	// DefaultMaxAge rewrites an unchanged report this often, so that its
	// observedAt says the figures are current. With 5,000 nodes that is
	// about 8 writes a second across a cluster when nothing changes.
	DefaultMaxAge = 10 * time.Minute
	// DefaultMinChangeMiB is the smallest change of one container's use
	// that is worth a write before MaxAge.
	DefaultMinChangeMiB = 64
)

const bytesPerMiB = 1 << 20

// Options configure a Reporter.
type Options struct {
	NodeName string
	Keys     annotations.Keys
	// Pods are the node's pods with their assignments (the node metrics'
	// source); Regions reads a container's usage region.
	Pods    nodemetrics.PodSource
	Regions nodemetrics.RegionReader
	Client  kubernetes.Interface
	// Interval, MaxAge and MinChangeMiB: zero means the default.
	Interval     time.Duration
	MaxAge       time.Duration
	MinChangeMiB int64
	Now          func() time.Time
}

// Reporter reads the node's regions on an interval and writes the report.
type Reporter struct {
	opts Options
	// last is what was last written, by container; written when.
	last    map[annotations.ContainerUsage]int64
	written time.Time
}

// New checks the options and fills in the defaults.
func New(opts Options) (*Reporter, error) {
	if opts.NodeName == "" || opts.Pods == nil || opts.Regions == nil || opts.Client == nil || opts.Keys.Usage == "" {
		return nil, errors.New("create usage reporter: node name, pods, regions, client and keys are required")
	}
	if opts.Interval < 0 || opts.MaxAge < 0 || opts.MinChangeMiB < 0 {
		return nil, fmt.Errorf("create usage reporter for node %s: negative interval, age or change", opts.NodeName)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultInterval
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.MinChangeMiB == 0 {
		opts.MinChangeMiB = DefaultMinChangeMiB
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Reporter{opts: opts}, nil
}

// Run reports every Interval until ctx ends. A failed report is logged and
// tried again at the next tick: the annotation is a convenience, never a
// reason to stop the node agent.
func (r *Reporter) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	ticker := time.NewTicker(r.opts.Interval)
	defer ticker.Stop()
	for {
		// The first report waits one interval: the node's pods are listed
		// by then, so a fresh agent does not log a missing cache.
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if _, err := r.Report(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "GPU usage report not written", "node", r.opts.NodeName)
		}
	}
}

// Report reads every assigned container's region and writes the report
// when it changed enough or grew old; written says whether it wrote.
func (r *Reporter) Report(ctx context.Context) (written bool, err error) {
	now := r.opts.Now()
	current, err := r.collect()
	if err != nil {
		return false, err
	}
	if !r.due(current, now) {
		return false, nil
	}
	u := annotations.Usage{ObservedAt: now.UTC().Truncate(time.Second)}
	for key, mib := range current {
		key.MemoryUsedMiB = mib
		u.Containers = append(u.Containers, key)
	}
	if err := r.write(ctx, u); err != nil {
		return false, err
	}
	r.last, r.written = current, now
	return true, nil
}

// collect sums each assigned container's used memory over its devices. A
// container without a region (not started, or not under the hook) is left
// out: nothing reports its use.
func (r *Reporter) collect() (map[annotations.ContainerUsage]int64, error) {
	pods, _, err := r.opts.Pods.AssignedPods()
	if err != nil {
		return nil, fmt.Errorf("read GPU usage on node %s: %w", r.opts.NodeName, err)
	}
	out := map[annotations.ContainerUsage]int64{}
	for _, p := range pods {
		for _, c := range p.Assignment.Containers {
			snap, err := r.opts.Regions(p.UID, c.Name)
			if err != nil {
				continue // no region yet, or unreadable: the metrics report why
			}
			var used uint64
			for _, d := range snap.Devices {
				used += d.UsedBytes
			}
			key := annotations.ContainerUsage{Namespace: p.Namespace, Pod: p.Name, Container: c.Name}
			out[key] = int64((used + bytesPerMiB - 1) / bytesPerMiB)
		}
	}
	if len(out) > annotations.MaxUsageContainers {
		return nil, fmt.Errorf("read GPU usage on node %s: %d containers, more than a report holds (%d)", r.opts.NodeName, len(out), annotations.MaxUsageContainers)
	}
	return out, nil
}

// due says whether current differs enough from what was written, or what
// was written is old.
func (r *Reporter) due(current map[annotations.ContainerUsage]int64, now time.Time) bool {
	if r.last == nil || now.Sub(r.written) >= r.opts.MaxAge || len(current) != len(r.last) {
		return true
	}
	for key, mib := range current {
		before, ok := r.last[key]
		if !ok || abs(mib-before) >= r.opts.MinChangeMiB || (mib == 0) != (before == 0) {
			return true
		}
	}
	return false
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// write patches the annotation onto the Node (a merge patch of one key).
func (r *Reporter) write(ctx context.Context, u annotations.Usage) error {
	raw, err := annotations.EncodeUsage(u)
	if err != nil {
		return fmt.Errorf("write GPU usage of node %s: %w", r.opts.NodeName, err)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{r.opts.Keys.Usage: raw}}})
	if err != nil {
		return fmt.Errorf("write GPU usage of node %s: %w", r.opts.NodeName, err)
	}
	if _, err := r.opts.Client.CoreV1().Nodes().Patch(ctx, r.opts.NodeName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("write GPU usage of node %s: %w", r.opts.NodeName, err)
	}
	klog.FromContext(ctx).V(4).Info("GPU usage report written", "node", r.opts.NodeName, "containers", len(u.Containers))
	return nil
}
