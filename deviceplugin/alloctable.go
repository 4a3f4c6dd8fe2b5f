package deviceplugin

import (
	"slices"
	"sync"
	"time"
)

// allocation is one live allocation: what Allocate decided from the slot
// IDs, and whose it is once the kubelet has said.
type allocation struct {
	key     string
	id      string
	slots   []string // sorted
	gpus    []string // the container's ordinal order
	created time.Time
	// owner is nil until resolved.
	owner *ownerRecord
	// done is closed when the allocation is resolved (PreStartContainer
	// waits on it).
	done chan struct{}
}

// allocTable holds the live allocations by key. Its mutex guards memory
// only; files are written under the key's lock (Plugin.keyLocks), and a
// writer checks here, under that lock, that the allocation it resolved is
// still the current one for the key.
type allocTable struct {
	mu    sync.Mutex
	byKey map[string]*allocation
	// nudge wakes the resolver after an Allocate.
	nudge chan struct{}
}

func newAllocTable() *allocTable {
	return &allocTable{byKey: map[string]*allocation{}, nudge: make(chan struct{}, 1)}
}

// put makes a the current allocation of its key.
func (t *allocTable) put(a *allocation) {
	a.done = make(chan struct{})
	if a.owner != nil {
		close(a.done)
	}
	t.mu.Lock()
	t.byKey[a.key] = a
	t.mu.Unlock()
	t.poke()
}

func (t *allocTable) poke() {
	select {
	case t.nudge <- struct{}{}:
	default:
	}
}

// current returns the allocation of key, if any.
func (t *allocTable) current(key string) (*allocation, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.byKey[key]
	return a, ok
}

// snapshot returns the IDs of every allocation by key. The resolver takes
// it before it asks the kubelet, and resolves an allocation only if its ID
// is still the same when it writes: an Allocate of the same slots in
// between (after which the kubelet's answer may be about the previous
// owner) makes it wait for the next pass.
func (t *allocTable) snapshot() map[string]*allocation {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]*allocation, len(t.byKey))
	for k, a := range t.byKey {
		out[k] = a
	}
	return out
}

// resolved marks a resolved if it is still the key's current allocation.
func (t *allocTable) resolved(a *allocation, owner ownerRecord) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey[a.key] != a {
		return false
	}
	if a.owner == nil {
		a.owner = &owner
		close(a.done)
	}
	return true
}

// isCurrent reports whether a is still its key's allocation.
func (t *allocTable) isCurrent(a *allocation) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byKey[a.key] == a
}

// drop forgets a, if it is still its key's allocation.
func (t *allocTable) drop(a *allocation) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey[a.key] != a {
		return false
	}
	delete(t.byKey, a.key)
	return true
}

// counts returns how many allocations are resolved and waiting.
func (t *allocTable) counts() (resolved, waiting int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range t.byKey {
		if a.owner != nil {
			resolved++
		} else {
			waiting++
		}
	}
	return resolved, waiting
}

// ownedBy returns the allocations resolved to a pod.
func (t *allocTable) ownedBy(podUID string) []*allocation {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*allocation
	for _, a := range t.byKey {
		if a.owner != nil && a.owner.PodUID == podUID {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y *allocation) int { return compareStrings(x.key, y.key) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
