package deviceplugin

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// find is the read-only match: the pod and container the request would be
// matched to now, if any (to name them in an error).
func (ix *podIndex) find(r slotRequest) (*corev1.Pod, string, bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	c, ok := ix.matchLocked(r, nil)
	if !ok {
		return nil, "", false
	}
	return c.entry.pod, c.container.name, true
}

// matchLocked returns the unserved container assigned exactly the
// requested slots, oldest pod first; failing that, the oldest unserved
// container assigned exactly the requested GPUs (the kubelet chose other
// slots of them, as it does when it skips GetPreferredAllocation).
func (ix *podIndex) matchLocked(r slotRequest, taken map[*assignedContainer]bool) (candidate, bool) {
	var exact, sameGPUs candidate
	var haveExact, haveSameGPUs bool
	distinctGPUs := len(r.gpus) == len(r.slots)
	ix.eachUnservedLocked(func(c candidate) bool {
		if taken[c.container] {
			return true
		}
		if slices.Equal(c.container.slots, r.slots) {
			exact, haveExact = c, true
			return false
		}
		if distinctGPUs && !haveSameGPUs && slices.Equal(c.container.gpus, r.gpus) {
			sameGPUs, haveSameGPUs = c, true
		}
		return true
	})
	if haveExact {
		return exact, true
	}
	return sameGPUs, haveSameGPUs
}
