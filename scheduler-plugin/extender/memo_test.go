package extender

import (
	"errors"
	"fmt"
	"testing"

	"github.com/tessera-gpu/tessera/pkg/vgpu"
)

func TestFitMemo(t *testing.T) {
	key := func(i int) requestKey {
		k, err := newRequestKey(vgpu.PodRequest{Containers: []vgpu.ContainerRequest{{Name: "main", GPUs: 1, MemoryMiBPerGPU: int64(i + 1)}}})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	verdict := func(i int) error { return fmt.Errorf("verdict %d", i) }
	tests := []struct {
		name string
		puts int
		// want lists the keys remembered, absent the ones forgotten.
		want, absent []int
	}{
		{name: "empty", absent: []int{0}},
		{name: "a few", puts: 3, want: []int{0, 1, 2}, absent: []int{3}},
		{name: "full", puts: maxFits, want: []int{0, maxFits - 1}},
		{name: "the oldest is replaced", puts: maxFits + 2, want: []int{2, maxFits + 1}, absent: []int{0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &fitMemo{}
			for i := range tt.puts {
				m.put(key(i), verdict(i))
			}
			for _, i := range tt.want {
				if got, ok := m.get(key(i)); !ok || got.Error() != verdict(i).Error() {
					t.Errorf("key %d: %v, %v; want %v", i, got, ok, verdict(i))
				}
			}
			for _, i := range tt.absent {
				if got, ok := m.get(key(i)); ok {
					t.Errorf("key %d is remembered (%v)", i, got)
				}
			}
		})
	}
}

// Two requests whose hashes collide are still told apart by their text.
func TestFitMemoComparesTheRequestNotOnlyItsHash(t *testing.T) {
	m := &fitMemo{}
	a, b := requestKey{text: "a", hash: 7}, requestKey{text: "b", hash: 7}
	m.put(a, errors.New("a does not fit"))
	if got, ok := m.get(b); ok {
		t.Errorf("request b got request a's verdict %v", got)
	}
	m.put(b, nil)
	if got, ok := m.get(b); !ok || got != nil {
		t.Errorf("request b: %v, %v; want it to fit", got, ok)
	}
}
