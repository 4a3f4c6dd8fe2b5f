package env

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tessera-gpu/tessera/pkg/annotations"
)

// FuzzReplicaOf: whatever a pod's annotations and scheduling message hold,
// reading it for a test or the demo's report never panics, and an
// assignment is reported either decoded or as an error, never both.
func FuzzReplicaOf(f *testing.F) {
	keys := annotations.DefaultKeys()
	good, err := annotations.EncodeAssignment(annotations.Assignment{Node: "n", Containers: []annotations.ContainerAssignment{{
		Name: "main", Devices: []annotations.AssignedDevice{{UUID: "GPU-1", SlotID: "GPU-1::0", MemoryMiB: 1024}},
	}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, `{"version":"v1","containers":["main"]}`, "0/1 nodes are available")
	f.Add("{", "}", "")
	f.Add(`{"version":"v9"}`, `{"version":"v1","containers":null}`, "\x00")
	f.Fuzz(func(t *testing.T, assignment, allocated, message string) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{keys.Assignment: assignment, keys.Allocated: allocated}},
			Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: message},
			}},
		}
		r := replicaOf("c", pod, keys)
		if (r.Assignment != nil) == (r.AssignmentErr != nil) {
			t.Fatalf("assignment %+v and error %v: want exactly one", r.Assignment, r.AssignmentErr)
		}
		if r.Why != message {
			t.Fatalf("Why = %q, want the scheduler's message %q", r.Why, message)
		}
	})
}
