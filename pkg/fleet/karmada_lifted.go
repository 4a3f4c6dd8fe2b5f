/*
Lifted from Karmada v1.18.0 (https://github.com/karmada-io/karmada), licensed
under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).
Copyright 2021-2022 The Karmada Authors.

Source: pkg/estimator/client/accurate.go, the conversion of
workv1alpha2.ReplicaRequirements into the MaxAvailableReplicasRequest that
karmada-scheduler sends to each member's estimator (unexported there).

Changes: a function of its own; errors are wrapped.
*/

package fleet

import (
	"fmt"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/estimator/pb"
)

// toPBRequest is the request karmada-scheduler sends an estimator for
// replicas with these requirements.
func toPBRequest(rr *workv1alpha2.ReplicaRequirements) (*pb.MaxAvailableReplicasRequest, error) {
	req := &pb.MaxAvailableReplicasRequest{}
	if rr == nil {
		return req, nil
	}
	req.ReplicaRequirements = &pb.ReplicaRequirements{
		Namespace:         rr.Namespace,
		PriorityClassName: rr.PriorityClassName,
	}
	if err := req.ReplicaRequirements.SetResourceRequest(rr.ResourceRequest); err != nil {
		return nil, fmt.Errorf("encode resource request: %w", err)
	}
	if rr.NodeClaim != nil {
		req.ReplicaRequirements.NodeClaim = &pb.NodeClaim{NodeSelector: rr.NodeClaim.NodeSelector}
		if err := req.ReplicaRequirements.NodeClaim.SetNodeAffinity(rr.NodeClaim.HardNodeAffinity); err != nil {
			return nil, fmt.Errorf("encode node affinity: %w", err)
		}
		if err := req.ReplicaRequirements.NodeClaim.SetTolerations(rr.NodeClaim.Tolerations); err != nil {
			return nil, fmt.Errorf("encode tolerations: %w", err)
		}
	}
	return req, nil
}
