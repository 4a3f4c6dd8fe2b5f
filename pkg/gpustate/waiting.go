package gpustate

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/tessera-gpu/tessera/pkg/config"
)

// WaitsForGPUs reports whether the pod is waiting for vGPUs: it has not
// ended, has no node, holds no readable assignment (a pod the extender
// has assigned but not yet bound is being placed, not waiting), and asks
// for Tessera resources. A pod whose request cannot be read does not
// count: no GPU would ever satisfy it, so it is not waiting for capacity.
// This is the definition of the fleet view's WaitingPods and of the
// estimator's tessera_cluster_pods_waiting, so the two agree.
func WaitsForGPUs(pod *corev1.Pod, cfg config.Config) bool {
	if pod == nil || pod.Spec.NodeName != "" || IsTerminal(pod) {
		return false
	}
	if _, found, err := PodAssignment(pod, cfg.Keys()); found && err == nil {
		return false
	}
	req, err := PodRequest(pod, cfg)
	return err == nil && len(req.Containers) > 0
}
