// Package admission is Tessera's mutating admission webhook for pods. Under
// compat: hami it does what HAMi's webhook does for HAMi's NVIDIA resources
// and nothing else: it adds nvidia.com/gpu: <hami.defaultGPUNum> to the
// limits of a container that asks for nvidia.com/gpumem,
// gpumem-percentage or gpucores without it (docs/migrating-from-hami.md).
// Which containers need it is decided by the one resource codec
// (gpustate.HAMiDefaultGPUs); this package only turns that into a JSON
// patch and speaks the AdmissionReview protocol.
package admission

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/pkg/gpustate"
)

// PatchOp is one RFC 6902 JSON patch operation.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value string `json:"value"`
}

// Mutation is what the webhook does to one pod.
type Mutation struct {
	// Patch adds the missing nvidia.com/gpu limits; empty leaves the pod
	// as it is.
	Patch []PatchOp
	// Warnings name containers that could not be read and were left as
	// they are; kubectl shows them to whoever creates the pod, and the
	// scheduler extender refuses such a pod with an event.
	Warnings []string
}

// Mutate computes the patch for pod under cfg. It is idempotent: a patched
// pod gets no further patch. Init containers are mutated too, as HAMi's
// webhook does.
func Mutate(pod *corev1.Pod, cfg config.Config) Mutation {
	var m Mutation
	if pod == nil || cfg.Compat != config.CompatHAMi {
		return m
	}
	for _, list := range []struct {
		field      string
		containers []corev1.Container
	}{{"initContainers", pod.Spec.InitContainers}, {"containers", pod.Spec.Containers}} {
		for i := range list.containers {
			c := &list.containers[i]
			n, err := gpustate.HAMiDefaultGPUs(c, cfg)
			if err != nil {
				m.Warnings = append(m.Warnings, fmt.Sprintf("%s (not given %s by the admission webhook; Tessera's scheduler will refuse the pod until it is fixed)", err, config.HAMiGPU))
				continue
			}
			if n == 0 {
				continue
			}
			// The container's limits name HAMi's memory or cores, so the
			// limits object exists and only the key is added.
			m.Patch = append(m.Patch, PatchOp{
				Op:    "add",
				Path:  fmt.Sprintf("/spec/%s/%d/resources/limits/%s", list.field, i, escapePointer(config.HAMiGPU)),
				Value: resource.NewQuantity(int64(n), resource.DecimalSI).String(),
			})
		}
	}
	return m
}

// escapePointer escapes one JSON pointer token (RFC 6901).
func escapePointer(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}
