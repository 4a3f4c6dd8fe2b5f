package server

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator/gpucache"
)

// Static answers MaxAvailableReplicas over a fixed set of nodes and pods,
// read once, with the same framework, plugins and kind of snapshot as the
// Server: the fleet view's "what fits" is the member's estimator's answer,
// computed where the data was read instead of inside the member.
type Static struct {
	cfg       config.Config
	framework framework.Framework
	snapshot  *schedcache.Snapshot
}

// fixedGPUs is a GPU state source that never changes.
type fixedGPUs struct{ snapshot *gpucache.Snapshot }

func (f fixedGPUs) Snapshot() *gpucache.Snapshot { return f.snapshot }

// NewStatic builds the estimator's two views of a member: Karmada's
// scheduler snapshot of nodes and bound pods (as the Server's informers
// feed it; pods must already exclude finished ones, as the Server's pod
// informer does) and the GPU state gpus (the nodes' devices as
// pkg/gpustate computes them).
func NewStatic(cfg config.Config, nodes []*corev1.Node, pods []*corev1.Pod, gpus *gpucache.Snapshot) (*Static, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create static estimator: %w", err)
	}
	stop := make(chan struct{})
	defer close(stop)
	cache := schedcache.New(0, stop)
	for _, node := range nodes {
		cache.AddNode(node)
	}
	for _, pod := range pods {
		if !assignedPod(pod) {
			continue
		}
		if err := cache.AddPod(pod); err != nil {
			return nil, fmt.Errorf("create static estimator: add pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
	}
	snapshot := schedcache.NewEmptySnapshot()
	if err := cache.UpdateSnapshot(snapshot); err != nil {
		return nil, fmt.Errorf("create static estimator: snapshot: %w", err)
	}
	fw, err := newFramework(cfg, fixedGPUs{gpus}, 0, nil)
	if err != nil {
		return nil, fmt.Errorf("create static estimator: %w", err)
	}
	return &Static{cfg: cfg, framework: fw, snapshot: snapshot}, nil
}

// MaxAvailableReplicas answers as the Server would for the same nodes and
// pods. The request's cluster name is not checked.
func (s *Static) MaxAvailableReplicas(ctx context.Context, request *pb.MaxAvailableReplicasRequest) (int32, error) {
	resp, err := estimateReplicas(ctx, s.framework, s.snapshot, request, s.cfg)
	if err != nil {
		return 0, err
	}
	return resp.MaxReplicas, nil
}
