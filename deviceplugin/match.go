package deviceplugin

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
)

// claim is a container matched to one container request of an Allocate and
// marked served.
type claim struct {
	pod       *corev1.Pod
	container assignedContainer
}

// matchFailure explains why a request matched no container.
type matchFailure struct {
	code codes.Code
	msg  string
	// pod is the pod the failure most likely concerns (for an event); nil
	// when no pod is a plausible target.
	pod *corev1.Pod
}

// claim matches every request to a distinct unserved container and marks
// them all served, or marks none and explains the first failure.
func (ix *podIndex) claim(reqs []slotRequest) ([]claim, *matchFailure) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	taken := make(map[*assignedContainer]bool, len(reqs))
	found := make([]candidate, len(reqs))
	for i, r := range reqs {
		c, ok := ix.matchLocked(r, taken)
		if !ok {
			return nil, ix.diagnoseLocked(r)
		}
		taken[c.container] = true
		found[i] = c
	}
	for _, c := range found {
		ix.markServedLocked(c.entry, c.container.name)
	}
	claims := make([]claim, len(found))
	for i, c := range found {
		claims[i] = claim{pod: c.entry.pod, container: *c.container}
	}
	return claims, nil
}

// allExact reports whether every request names exactly the slots of a
// distinct unserved container.
func (ix *podIndex) allExact(reqs []slotRequest) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	taken := make(map[*assignedContainer]bool, len(reqs))
	for _, r := range reqs {
		found := false
		ix.eachUnservedLocked(func(c candidate) bool {
			if !taken[c.container] && slices.Equal(c.container.slots, r.slots) {
				taken[c.container], found = true, true
				return false
			}
			return true
		})
		if !found {
			return false
		}
	}
	return true
}

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

// maxSuspects bounds how many unmatchable pods an error names.
const maxSuspects = 3

// diagnoseLocked explains why nothing matched r, naming the pods that
// could be the one the kubelet is admitting.
func (ix *podIndex) diagnoseLocked(r slotRequest) *matchFailure {
	f := &matchFailure{code: codes.NotFound}
	var b strings.Builder
	fmt.Fprintf(&b, "slots %s (GPUs %s) on node %s match no container waiting for GPUs",
		quoteList(r.slots), strings.Join(r.gpus, ","), ix.node)

	var suspects []*podEntry
	var servedOwner string
	var sameSize *candidate
	for _, e := range ix.orderedLocked() {
		if e.terminal {
			continue
		}
		if e.problem != "" && e.wantsResource {
			suspects = append(suspects, e)
			continue
		}
		for i := range e.containers {
			c := &e.containers[i]
			served := ix.isServedLocked(e, c.name)
			switch {
			case served && servedOwner == "" && (slices.Equal(c.slots, r.slots) || slices.Equal(c.gpus, r.gpus)):
				servedOwner = fmt.Sprintf("container %q of pod %s", c.name, e.key())
			case !served && sameSize == nil && len(c.slots) == len(r.slots):
				sameSize = &candidate{entry: e, container: c}
			}
		}
	}
	if servedOwner != "" {
		f.code = codes.FailedPrecondition
		fmt.Fprintf(&b, "; they are assigned to %s, which was already served", servedOwner)
	}
	for i, e := range suspects {
		if i == maxSuspects {
			fmt.Fprintf(&b, "; and %d more pods without a usable assignment", len(suspects)-maxSuspects)
			break
		}
		f.code = codes.FailedPrecondition
		fmt.Fprintf(&b, "; pod %s cannot be matched: %s", e.key(), e.problem)
	}
	if len(suspects) > 0 {
		f.pod = suspects[0].pod
	} else if sameSize != nil {
		fmt.Fprintf(&b, "; the oldest waiting container of that size is %q of pod %s, assigned slots %s",
			sameSize.container.name, sameSize.entry.key(), quoteList(sameSize.container.slots))
		f.pod = sameSize.entry.pod
	} else if servedOwner == "" {
		b.WriteString("; no pod on this node waits for them (was the pod placed by the Tessera scheduler extender?)")
	}
	f.msg = b.String()
	return f
}
