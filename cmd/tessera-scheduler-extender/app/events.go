package app

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
)

// trackingSink is an event sink that knows when it last wrote, so that a
// stopping extender can give the events of its last calls (an unschedulable
// pod's reason, say) time to reach the API server: the broadcaster writes
// them asynchronously and drops what is queued when it is shut down.
type trackingSink struct {
	sink record.EventSink

	mu       sync.Mutex
	inFlight int
	last     time.Time
}

func (s *trackingSink) track() func() {
	s.mu.Lock()
	s.inFlight++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		s.inFlight--
		s.last = time.Now()
		s.mu.Unlock()
	}
}

func (s *trackingSink) Create(e *corev1.Event) (*corev1.Event, error) {
	defer s.track()()
	return s.sink.Create(e)
}

func (s *trackingSink) Update(e *corev1.Event) (*corev1.Event, error) {
	defer s.track()()
	return s.sink.Update(e)
}

func (s *trackingSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	defer s.track()()
	return s.sink.Patch(e, data)
}

// settle waits until no write is in flight and none has happened for quiet,
// or until ctx ends.
func (s *trackingSink) settle(ctx context.Context, quiet time.Duration) {
	tick := time.NewTicker(quiet / 5)
	defer tick.Stop()
	start := time.Now()
	for {
		s.mu.Lock()
		last := s.last
		if last.IsZero() {
			last = start
		}
		idle := s.inFlight == 0 && time.Since(last) >= quiet
		s.mu.Unlock()
		if idle {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
