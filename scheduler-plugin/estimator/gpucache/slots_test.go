package gpucache

import (
	"testing"
	"time"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// TestSlots checks what the estimator's node table relies on: a name keeps
// its slot through deletion and return, a published snapshot never sees
// later changes, and the name version moves only when a name is new.
func TestSlots(t *testing.T) {
	tests := []struct {
		name string
		// change runs after the first snapshot was taken.
		change func(c *Cache)
		// wantNewName says whether the change numbered a new name.
		wantNewName bool
		// wantA is whether node "a" has a state after the change.
		wantA bool
	}{
		{"pod change", func(c *Cache) { c.UpsertPod(pod(t, "p2", "a", "a", "GPU-a", 200)) }, false, true},
		{"node deleted", func(c *Cache) { c.DeleteNode("a") }, false, false},
		{"node deleted and back", func(c *Cache) { c.DeleteNode("a"); c.UpsertNode(node(t, "a", gpu("GPU-a", "A100"))) }, false, true},
		{"new node", func(c *Cache) { c.UpsertNode(node(t, "c", gpu("GPU-c", "A100"))) }, true, true},
		{"pod on an unknown node", func(c *Cache) { c.UpsertPod(pod(t, "p3", "d", "d", "GPU-d", 100)) }, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New(annotations.DefaultKeys())
			c.UpsertNode(node(t, "a", gpu("GPU-a", "A100")))
			c.UpsertNode(node(t, "b", gpu("GPU-b", "A100")))
			c.UpsertPod(pod(t, "p1", "a", "a", "GPU-a", 100))
			first := c.Snapshot()
			slotA, ok := first.Slot("a")
			if !ok {
				t.Fatal("no slot for a")
			}
			stateA := first.AtSlot(slotA)
			lineage, names := first.Lineage()

			tt.change(c)
			second := c.Snapshot()

			if first.AtSlot(slotA) != stateA || first.Len() != 2 {
				t.Errorf("the first snapshot changed: state %p, want %p; len %d", first.AtSlot(slotA), stateA, first.Len())
			}
			if s, ok := second.Slot("a"); !ok || s != slotA {
				t.Errorf("slot of a is %d (%v), want %d", s, ok, slotA)
			}
			if got, _ := second.Node("a"); (got != nil) != tt.wantA || got != second.AtSlot(slotA) {
				t.Errorf("Node(a) = %v, AtSlot = %v, want a state: %v", got, second.AtSlot(slotA), tt.wantA)
			}
			l2, names2 := second.Lineage()
			if l2 != lineage || (names2 != names) != tt.wantNewName {
				t.Errorf("lineage same %v, names %d -> %d, want a new name: %v", l2 == lineage, names, names2, tt.wantNewName)
			}
		})
	}
	if other, _ := NewSnapshot(nil, time.Time{}).Lineage(); other == nil {
		t.Error("NewSnapshot has no lineage")
	}
}
