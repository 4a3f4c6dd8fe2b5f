package deviceplugin

import (
	"context"
	"slices"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// BenchmarkAllocate measures one Allocate call (decode, match, mark served,
// region directory, response, Allocated patch against a fake clientset) on
// a node with 8 GPUs x 10 slots and about 40 pods indexed. Each iteration
// first forgets what was served, so every call does the full work. Logging
// is discarded: the benchmark measures the plugin, not klog's output.
//
// api=noop answers the patch at once (the plugin's own cost; a real API
// server adds one round trip); api=fake-clientset applies it in client-go's
// fake clientset, whose field-managed tracker costs far more than the plugin.
func BenchmarkAllocate(b *testing.B) {
	pods := node8x10Pods(50, 7)
	choice := kubeletChoice(b, pods)
	exact := map[string][]string{}
	for _, pod := range pods {
		for _, c := range assignedOf(b, pod).Containers {
			for _, d := range c.Devices {
				key := string(pod.UID) + "/" + c.Name
				exact[key] = append(exact[key], d.SlotID)
			}
		}
	}
	for _, bc := range []struct {
		name     string
		requests map[string][]string
		noopAPI  bool
	}{
		{"exact-slots/api=noop", exact, true},
		{"other-slots-of-same-GPUs/api=noop", choice, true},
		{"exact-slots/api=fake-clientset", exact, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPlugin(b, pods, bc.noopAPI)
			keys := slices.Sorted(func(yield func(string) bool) {
				for k := range bc.requests {
					if !yield(k) {
						return
					}
				}
			})
			reqs := make([]*pluginapi.AllocateRequest, len(keys))
			for i, k := range keys {
				reqs[i] = allocReq(bc.requests[k]...)
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				p.index.mu.Lock()
				clear(p.index.served)
				p.index.mu.Unlock()
				if _, err := p.allocate(ctx, reqs[i%len(reqs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func benchPlugin(b *testing.B, pods []*corev1.Pod, noopAPI bool) *Plugin {
	objects := make([]runtime.Object, len(pods))
	for i, pod := range pods {
		objects[i] = pod
	}
	p := indexedPlugin(b, newFakeGPUs(8, 10), pods...)
	client := fake.NewClientset(objects...)
	if noopAPI {
		client.PrependReactor("patch", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, pods[0], nil
		})
	}
	p.client = client
	p.logger = logr.Discard()
	if err := p.regions.prepare(); err != nil {
		b.Fatal(err)
	}
	if n := len(p.index.pods); n < 35 || n > 45 {
		b.Fatalf("%d pods indexed, want about 40", n)
	}
	return p
}
