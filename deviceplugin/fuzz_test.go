package deviceplugin

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tessera-gpu/tessera/pkg/annotations"
	"github.com/tessera-gpu/tessera/pkg/hookenv"
	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

// FuzzDecodeSlotRequest feeds arbitrary device IDs (one per line) to the
// decoder of kubelet requests: it must never panic, and what it accepts must
// be distinct, existing slots.
func FuzzDecodeSlotRequest(f *testing.F) {
	g0, g1 := gpuUUID(0), gpuUUID(1)
	for _, seed := range []string{
		"", vgpu.SlotID(g0, 0), vgpu.SlotID(g0, 0) + "\n" + vgpu.SlotID(g1, 3),
		vgpu.SlotID(g0, 0) + "\n" + vgpu.SlotID(g0, 0), g0 + "::-1", g0 + "::99999999999999999999",
		"::3", "GPU-x::", "\n", g0 + "::1::2", "GPU-\xff::0", vgpu.SlotID(g1, 4),
	} {
		f.Add(seed)
	}
	gpus := newFakeGPUs(2, 4).GPUs()
	f.Fuzz(func(t *testing.T, joined string) {
		ids := strings.Split(joined, "\n")
		req, err := decodeSlotRequest(ids, gpus)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(req.slots) != len(ids) || !slices.IsSorted(req.slots) || !slices.IsSorted(req.gpus) {
			t.Fatalf("decoded %v from %q", req, ids)
		}
		for i, id := range req.slots {
			if i > 0 && req.slots[i-1] == id {
				t.Fatalf("duplicate %q accepted", id)
			}
			uuid, n, err := vgpu.ParseSlotID(id)
			if err != nil {
				t.Fatalf("accepted malformed %q", id)
			}
			g, ok := findGPU(gpus, uuid)
			if !ok || n >= g.Slots || !slices.Contains(req.gpus, uuid) {
				t.Fatalf("accepted %q that names no slot of the node", id)
			}
		}
	})
}

// FuzzPodAnnotations feeds arbitrary assignment and Allocated annotations
// to the pod index: it must never panic, a pod it accepts must be
// consistent with its spec, every accepted assignment must render a valid
// hook environment, and its slots must match it back.
func FuzzPodAnnotations(f *testing.F) {
	g0 := gpuUUID(0)
	valid := podSpec("p", time.Unix(0, 0), testNode, true,
		testContainer{name: "a", slots: []string{vgpu.SlotID(g0, 1)}, mem: 100, cores: 50})
	keys := annotations.DefaultKeys()
	f.Add(valid.Annotations[keys.Assignment], "", uint8(1))
	f.Add(valid.Annotations[keys.Assignment], `{"version":"v1","containers":["a"]}`, uint8(1))
	f.Add(valid.Annotations[keys.Assignment], `{"version":"v1","containers":["b"]}`, uint8(2))
	f.Add(`{"version":"v1","node":"node-a","containers":[{"name":"../x","devices":[{"uuid":"G","slotID":"G::0","memoryMiB":1,"cores":0}]}]}`, "", uint8(1))
	f.Add(`{"version":"v1","node":"node-a","containers":[{"name":"a","devices":[{"uuid":"G","slotID":"G::0","memoryMiB":1,"cores":101}]}]}`, "", uint8(1))
	f.Add(`{"version":"v2"}`, "null", uint8(0))
	f.Add("", "", uint8(3))
	gpus := newFakeGPUs(2, 4)
	f.Fuzz(func(t *testing.T, assignment, allocated string, want uint8) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "uid-p", Annotations: map[string]string{}},
			Spec: corev1.PodSpec{NodeName: testNode, Containers: []corev1.Container{
				{Name: "a", Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
					testResource: *resource.NewQuantity(int64(want%4), resource.DecimalSI)}}},
				{Name: "b"},
			}},
		}
		if assignment != "" {
			pod.Annotations[keys.Assignment] = assignment
		}
		if allocated != "" {
			pod.Annotations[keys.Allocated] = allocated
		}
		ix := newPodIndex(testNode, testResource, keys)
		entry, _ := ix.upsert(pod)
		if entry.problem != "" {
			if entry.containers != nil {
				t.Fatalf("a pod with a problem has containers: %+v", entry)
			}
			return
		}
		for _, c := range entry.containers {
			if len(validation.IsDNS1123Label(c.name)) > 0 || (c.name != "a" && c.name != "b") {
				t.Fatalf("accepted container name %q", c.name)
			}
			if c.name == "a" && len(c.devices) != int(want%4) {
				t.Fatalf("container a asks for %d slots, accepted %d", want%4, len(c.devices))
			}
			req, err := decodeSlotRequest(c.slots, gpus.GPUs())
			if err != nil {
				continue // Slots of GPUs this node does not have.
			}
			// The kubelet giving a container exactly its slots must yield
			// its limits, which the library's codec accepts.
			l, refused, _ := limitsFor(&allocation{id: "a1", slots: req.slots, gpus: req.gpus}, entry, c.name)
			if refused != "" {
				t.Fatalf("container %s is refused its own slots: %s", c.name, refused)
			}
			if _, err := hookenv.EncodeLimits(l); err != nil {
				t.Fatalf("accepted assignment renders no limits file: %v", err)
			}
		}
	})
}
