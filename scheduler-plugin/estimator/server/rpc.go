package server

import (
	"context"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"github.com/karmada-io/karmada/pkg/estimator/pb"
	"github.com/karmada-io/karmada/pkg/estimator/server/framework"
	karmadametrics "github.com/karmada-io/karmada/pkg/estimator/server/metrics"
	"github.com/karmada-io/karmada/pkg/features"
	"github.com/karmada-io/karmada/pkg/util"
	schedcache "github.com/karmada-io/karmada/pkg/util/lifted/scheduler/cache"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/scheduler-plugin/estimator"
)

// RPC names, as the request-latency metric labels them.
const (
	rpcMaxAvailableReplicas      = "MaxAvailableReplicas"
	rpcMaxAvailableComponentSets = "MaxAvailableComponentSets"
	rpcGetUnschedulableReplicas  = "GetUnschedulableReplicas"
)

// MaxAvailableReplicas answers how many replicas of one template fit.
func (s *Server) MaxAvailableReplicas(ctx context.Context, request *pb.MaxAvailableReplicasRequest) (*pb.MaxAvailableReplicasResponse, error) {
	return handle(ctx, s, rpcMaxAvailableReplicas, karmadametrics.EstimatingTypeMaxAvailableReplicas, func() (*pb.MaxAvailableReplicasResponse, error) {
		if err := s.checkCluster(request.GetCluster()); err != nil {
			return nil, err
		}
		snapshot, err := s.snapshot()
		if err != nil {
			return nil, err
		}
		defer s.snapshots.release(snapshot)
		return estimateReplicas(snapshot.context(ctx), s.framework, snapshot.Snapshot, request, s.cfg.Tessera)
	})
}

// estimateReplicas is the answer to MaxAvailableReplicas over one
// snapshot: the server's, or a Static estimator's.
func estimateReplicas(ctx context.Context, fw framework.Framework, snapshot *schedcache.Snapshot,
	request *pb.MaxAvailableReplicasRequest, cfg config.Config) (*pb.MaxAvailableReplicasResponse, error) {
	if _, err := estimator.ParseReplicaRequirements(request.GetReplicaRequirements(), cfg); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "replica requirements: %v", err)
	}
	if snapshot.NumNodes() == 0 {
		return &pb.MaxAvailableReplicasResponse{}, nil
	}
	estCtx := framework.ReplicaEstimationContext{Snapshot: snapshot, ReplicaRequirements: request.GetReplicaRequirements()}
	if features.FeatureGate.Enabled(features.SchedulingOvercommitProtection) {
		estCtx.AssumedWorkloads = request.GetAssumedWorkloads()
	}
	replicas, ret := fw.RunEstimateReplicasPlugins(ctx, estCtx)
	switch {
	case ret.IsUnschedulable():
		return &pb.MaxAvailableReplicasResponse{}, nil
	case ret.IsFailed():
		return nil, pluginError(ctx, "estimate replicas", ret)
	}
	return &pb.MaxAvailableReplicasResponse{MaxReplicas: replicas}, nil
}

// MaxAvailableComponentSets answers how many complete component sets fit.
func (s *Server) MaxAvailableComponentSets(ctx context.Context, request *pb.MaxAvailableComponentSetsRequest) (*pb.MaxAvailableComponentSetsResponse, error) {
	return handle(ctx, s, rpcMaxAvailableComponentSets, karmadametrics.EstimatingTypeMaxAvailableComponentSets, func() (*pb.MaxAvailableComponentSetsResponse, error) {
		if err := s.checkCluster(request.GetCluster()); err != nil {
			return nil, err
		}
		if err := s.checkComponents(request.GetComponents()); err != nil {
			return nil, err
		}
		snapshot, err := s.snapshot()
		if err != nil {
			return &pb.MaxAvailableComponentSetsResponse{}, err
		}
		defer s.snapshots.release(snapshot)
		if snapshot.NumNodes() == 0 {
			return &pb.MaxAvailableComponentSetsResponse{}, nil
		}
		estCtx := framework.ComponentEstimationContext{Snapshot: snapshot.Snapshot, Components: request.GetComponents(), Namespace: request.GetNamespace()}
		if features.FeatureGate.Enabled(features.SchedulingOvercommitProtection) {
			estCtx.AssumedWorkloads = request.GetAssumedWorkloads()
		}
		sets, ret := s.framework.RunEstimateComponentsPlugins(snapshot.context(ctx), estCtx)
		switch {
		case ret.IsUnschedulable():
			return &pb.MaxAvailableComponentSetsResponse{}, nil
		case !ret.IsSuccess() && !ret.IsNoOperation():
			return nil, pluginError(ctx, "estimate component sets", ret)
		}
		return &pb.MaxAvailableComponentSetsResponse{MaxSets: sets}, nil
	})
}

// GetUnschedulableReplicas counts a workload's long-unschedulable pods, as
// Karmada's estimator does.
func (s *Server) GetUnschedulableReplicas(ctx context.Context, request *pb.UnschedulableReplicasRequest) (*pb.UnschedulableReplicasResponse, error) {
	return handle(ctx, s, rpcGetUnschedulableReplicas, karmadametrics.EstimatingTypeGetUnschedulableReplicas, func() (*pb.UnschedulableReplicasResponse, error) {
		if err := s.checkCluster(request.GetCluster()); err != nil {
			return nil, err
		}
		if request.GetResource() == nil {
			return nil, status.Error(codes.InvalidArgument, "no workload named: resource is nil")
		}
		n, err := s.workloads.unschedulableReplicas(request)
		switch {
		case apierrors.IsNotFound(err):
			return nil, status.Error(codes.NotFound, err.Error())
		case err != nil:
			return nil, status.Error(codes.Internal, err.Error())
		}
		return &pb.UnschedulableReplicasResponse{UnschedulableReplicas: n}, nil
	})
}

func (s *Server) checkCluster(cluster string) error {
	if cluster != s.cfg.ClusterName {
		return status.Errorf(codes.InvalidArgument, "cluster name does not match: got %q, this estimator serves %q", cluster, s.cfg.ClusterName)
	}
	return nil
}

// checkComponents refuses sets that cannot be reasoned about. A set with no
// replica at all is refused too: every set of it would "fit", and Karmada's
// stock simulator would count such sets one by one up to 2^31.
func (s *Server) checkComponents(components []*pb.Component) error {
	replicas := false
	for _, c := range components {
		if c == nil {
			continue
		}
		if c.GetReplicas() < 0 {
			return status.Errorf(codes.InvalidArgument, "component %q has %d replicas", c.GetName(), c.GetReplicas())
		}
		if _, err := estimator.ParseComponentRequirements(c.GetReplicaRequirements(), s.cfg.Tessera); err != nil {
			return status.Errorf(codes.InvalidArgument, "component %q: %v", c.GetName(), err)
		}
		replicas = replicas || c.GetReplicas() > 0
	}
	if !replicas {
		return status.Error(codes.InvalidArgument, "the component set has no replica")
	}
	return nil
}

// snapshot takes an up-to-date snapshot of Karmada's scheduler cache for
// one request (snapshots.go); the caller releases it when done.
func (s *Server) snapshot() (*pooledSnapshot, error) {
	snapshot, err := s.snapshots.acquire()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	return snapshot, nil
}

func pluginError(ctx context.Context, what string, ret *framework.Result) error {
	if err := ctx.Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return status.Errorf(codes.Internal, "%s: %s", what, strings.Join(ret.Reasons(), "; "))
}

// handle runs one RPC: it records latency (Tessera's histogram and
// Karmada's own estimator metrics, so existing dashboards keep working),
// logs the outcome, and turns a panic into an Internal error.
func handle[Resp any](ctx context.Context, s *Server, rpc, karmadaType string, do func() (Resp, error)) (resp Resp, err error) {
	start := time.Now()
	object := objectOf(ctx)
	defer func() {
		if r := recover(); r != nil {
			klog.ErrorS(nil, "Estimator RPC panicked", "rpc", rpc, "object", object, "panic", r, "stack", string(debug.Stack()))
			var zero Resp
			resp, err = zero, status.Errorf(codes.Internal, "%s: internal error", rpc)
		}
		if err != nil {
			if _, ok := status.FromError(err); !ok {
				err = status.Error(codes.Internal, err.Error())
			}
		}
		s.metrics.ObserveRequest(rpc, status.Code(err), time.Since(start))
		karmadametrics.CountRequests(err, karmadaType)
		karmadametrics.UpdateEstimatingAlgorithmLatency(err, karmadaType, karmadametrics.EstimatingStepTotal, start)
		if err != nil {
			klog.ErrorS(err, "Estimator RPC failed", "rpc", rpc, "object", object, "cluster", s.cfg.ClusterName)
			return
		}
		if v := klog.V(2); v.Enabled() { // the arguments would allocate even when not logged
			v.InfoS("Estimator RPC answered", "rpc", rpc, "object", object, "answer", resp, "elapsed", time.Since(start))
		}
	}()
	return do()
}

// objectOf is the workload Karmada's scheduler names in the request
// metadata, for logs.
func objectOf(ctx context.Context) string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ""
	}
	if m := md.Get(string(util.ContextKeyObject)); len(m) != 0 {
		return m[0]
	}
	return ""
}
