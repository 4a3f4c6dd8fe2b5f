package app

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// slowSink takes d to write an event.
type slowSink struct{ d time.Duration }

func (s slowSink) Create(e *corev1.Event) (*corev1.Event, error) { time.Sleep(s.d); return e, nil }
func (s slowSink) Update(e *corev1.Event) (*corev1.Event, error) { time.Sleep(s.d); return e, nil }
func (s slowSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) {
	time.Sleep(s.d)
	return e, nil
}

func TestTrackingSinkSettle(t *testing.T) {
	const quiet = 50 * time.Millisecond
	tests := []struct {
		name string
		// write starts one write of this duration before settling; 0: none.
		write time.Duration
		// min and max bound how long settle may take.
		min, max time.Duration
	}{
		{name: "idle sink settles after the quiet period", min: quiet, max: 20 * quiet},
		{name: "a write in flight is waited for", write: 6 * quiet, min: 6*quiet + quiet, max: 30 * quiet},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &trackingSink{sink: slowSink{d: tc.write}}
			start := time.Now()
			if tc.write > 0 {
				started := make(chan struct{})
				go func() {
					done := s.track()
					close(started)
					_, _ = s.sink.Create(&corev1.Event{})
					done()
				}()
				<-started
			}
			s.settle(context.Background(), quiet)
			if took := time.Since(start); took < tc.min || took > tc.max {
				t.Errorf("settle took %v, want %v..%v", took, tc.min, tc.max)
			}
		})
	}
	t.Run("a cancelled context ends the wait", func(t *testing.T) {
		s := &trackingSink{sink: slowSink{}}
		s.track() // never finishes
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		defer cancel()
		start := time.Now()
		s.settle(ctx, quiet)
		if took := time.Since(start); took > 20*quiet {
			t.Errorf("settle ignored its context for %v", took)
		}
	})
}
