package gpu

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/go-logr/logr"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/tessera-gpu/tessera/pkg/config"
)

const (
	recovery = 5 * time.Minute
	// patience bounds every wait for something that must happen; quiet is
	// how long a test watches for something that must not.
	patience = 5 * time.Second
	quiet    = 100 * time.Millisecond
	allGPUs  = -1
)

// harness runs a Tracker over a mock DGX A100 with a fake clock.
type harness struct {
	t        *testing.T
	lib      *MockLibrary
	tr       *Tracker
	clock    *testingclock.FakeClock
	notified <-chan struct{}
	handled  chan struct{}
	cancel   context.CancelFunc
	runDone  chan error
}

func startHarness(t *testing.T, setOpts func(*TrackerOptions), breakLib func(*MockLibrary)) *harness {
	t.Helper()
	h := &harness{
		t:       t,
		lib:     newMock(t, config.MockNode{Machine: "dgxa100"}, "node-a"),
		clock:   testingclock.NewFakeClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)),
		handled: make(chan struct{}, 100),
		runDone: make(chan error, 1),
	}
	if breakLib != nil {
		breakLib(h.lib)
	}
	opts := TrackerOptions{SplitCount: 10, MemoryScaling: 1, Recovery: recovery, Clock: h.clock, EventWaitTimeout: 20 * time.Millisecond}
	if setOpts != nil {
		setOpts(&opts)
	}
	tr, err := NewTracker(h.lib, opts)
	if err != nil {
		t.Fatalf("NewTracker: %v", err)
	}
	h.tr = tr
	tr.afterEvent = func() { h.handled <- struct{}{} }
	notified, unsubscribe := tr.Subscribe()
	h.notified = notified
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runDone <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.runDone:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(patience):
			t.Errorf("Run did not return within %v of cancel", patience)
		}
		unsubscribe()
		tr.Shutdown()
	})
	return h
}

func (h *harness) uuid(pos int) string {
	if pos == allGPUs {
		return ""
	}
	return mockDevice(h.lib, pos).UUID
}

func (h *harness) waitHandled() {
	h.t.Helper()
	select {
	case <-h.handled:
	case <-time.After(patience):
		h.t.Fatalf("the tracker did not handle the event within %v", patience)
	}
}

// expectNotification checks whether the subscriber is notified within the
// given time; within 0 checks for a notification already pending.
func (h *harness) expectNotification(want bool, within time.Duration) {
	h.t.Helper()
	got := false
	if within == 0 {
		select {
		case <-h.notified:
			got = true
		default:
		}
	} else {
		select {
		case <-h.notified:
			got = true
		case <-time.After(within):
		}
	}
	switch {
	case got && !want:
		h.t.Fatal("subscriber was notified, but no GPU's health should have changed")
	case !got && want:
		h.t.Fatalf("subscriber was not notified within %v", within)
	}
}

func (h *harness) unhealthy() []int {
	var out []int
	for p, g := range h.tr.GPUs() {
		if !g.Healthy {
			out = append(out, p)
		}
	}
	return out
}

// step is one action on the harness and what must follow it.
type step struct {
	xid     uint64 // inject this Xid on GPU gpu (allGPUs: the all-devices event)
	gpu     int
	waitErr bool          // make the next event wait fail
	advance time.Duration // step the fake clock
	// wantChange: the subscriber must be notified; otherwise it must not be.
	wantChange    bool
	wantUnhealthy []int // positions, or nil for every GPU healthy
}

func TestHealth(t *testing.T) {
	every := []int{0, 1, 2, 3, 4, 5, 6, 7}
	tests := []struct {
		name    string
		setOpts func(*TrackerOptions)
		steps   []step
	}{
		{"critical Xid marks its GPU unhealthy", nil, []step{
			{xid: 79, gpu: 2, wantChange: true, wantUnhealthy: []int{2}},
		}},
		{"application Xids are ignored", nil, []step{
			{xid: 13, gpu: 2}, {xid: 31, gpu: 2}, {xid: 43, gpu: 3}, {xid: 45, gpu: 4},
			{xid: 68, gpu: 5}, {xid: 109, gpu: 6}, {xid: 13, gpu: allGPUs},
		}},
		{"extra ignored Xids are ignored, others are not", func(o *TrackerOptions) { o.ExtraIgnoredXids = []uint64{94} }, []step{
			{xid: 94, gpu: 1},
			{xid: 48, gpu: 1, wantChange: true, wantUnhealthy: []int{1}},
		}},
		{"quiet period returns the GPU to healthy", nil, []step{
			{xid: 79, gpu: 2, wantChange: true, wantUnhealthy: []int{2}},
			{advance: recovery - time.Second, wantUnhealthy: []int{2}},
			{advance: time.Second, wantChange: true},
		}},
		{"a new Xid during the quiet period restarts it", nil, []step{
			{xid: 79, gpu: 2, wantChange: true, wantUnhealthy: []int{2}},
			{advance: recovery / 2, wantUnhealthy: []int{2}},
			{xid: 79, gpu: 2, wantUnhealthy: []int{2}},
			{advance: recovery / 2, wantUnhealthy: []int{2}},
			{advance: recovery / 2, wantChange: true},
		}},
		{"GPUs recover independently", nil, []step{
			{xid: 79, gpu: 0, wantChange: true, wantUnhealthy: []int{0}},
			{advance: recovery / 2, wantUnhealthy: []int{0}},
			{xid: 63, gpu: 5, wantChange: true, wantUnhealthy: []int{0, 5}},
			{advance: recovery / 2, wantChange: true, wantUnhealthy: []int{5}},
			{advance: recovery / 2, wantChange: true},
		}},
		{"an all-devices event marks every GPU unhealthy", nil, []step{
			{xid: 79, gpu: allGPUs, wantChange: true, wantUnhealthy: every},
			{advance: recovery, wantChange: true},
		}},
		{"recovery 0 never heals", func(o *TrackerOptions) { o.Recovery = 0 }, []step{
			{xid: 79, gpu: 2, wantChange: true, wantUnhealthy: []int{2}},
			{advance: 1000 * time.Hour, wantUnhealthy: []int{2}},
		}},
		{"a failed event wait marks every GPU unhealthy", nil, []step{
			{waitErr: true, wantChange: true, wantUnhealthy: every},
			{advance: recovery, wantChange: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startHarness(t, tc.setOpts, nil)
			for i, s := range tc.steps {
				wait := quiet
				switch {
				case s.xid != 0:
					if err := h.lib.InjectXid(h.uuid(s.gpu), s.xid); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					h.waitHandled()
					wait = 0 // Run notifies before it reports the event handled
				case s.waitErr:
					if err := h.lib.injectWaitError(nvml.ERROR_UNKNOWN); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					h.waitHandled()
					wait = 0
				case s.advance > 0:
					h.clock.Step(s.advance)
				}
				if s.wantChange {
					wait = patience
				}
				h.expectNotification(s.wantChange, wait)
				if got := h.unhealthy(); !slices.Equal(got, s.wantUnhealthy) {
					t.Fatalf("step %d (%+v): unhealthy GPUs %v, want %v", i, s, got, s.wantUnhealthy)
				}
			}
		})
	}
}

func TestRegistrationFailures(t *testing.T) {
	h := startHarness(t, nil, func(l *MockLibrary) {
		mockDevice(l, 1).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.ERROR_NOT_SUPPORTED }
		mockDevice(l, 2).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeClock, nvml.SUCCESS }
		mockDevice(l, 3).RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.ERROR_UNKNOWN }
		mockDevice(l, 4).GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	})
	// Only GPU 3's registration truly failed.
	h.expectNotification(true, patience)
	if got := h.unhealthy(); !slices.Equal(got, []int{3}) {
		t.Fatalf("after registration unhealthy GPUs %v, want [3]", got)
	}
	// GPU 1 is not watched (the driver never delivers its events); GPU 0 is.
	for _, pos := range []int{1, 0} {
		if err := h.lib.InjectXid(h.uuid(pos), 79); err != nil {
			t.Fatal(err)
		}
	}
	h.waitHandled()
	h.expectNotification(true, 0)
	if got := h.unhealthy(); !slices.Equal(got, []int{0, 3}) {
		t.Fatalf("after Xids on GPUs 1 and 0 unhealthy GPUs %v, want [0 3]", got)
	}
	// GPU 0 recovers; GPU 3, which cannot be watched, does not.
	h.clock.Step(recovery)
	h.expectNotification(true, patience)
	if got := h.unhealthy(); !slices.Equal(got, []int{3}) {
		t.Fatalf("after the quiet period unhealthy GPUs %v, want [3]", got)
	}
}

func TestRunStopsPromptlyOnCancel(t *testing.T) {
	lib := newMock(t, config.MockNode{Machine: "dgxh100"}, "n")
	tr, err := NewTracker(lib, TrackerOptions{SplitCount: 1, MemoryScaling: 1, EventWaitTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	time.Sleep(quiet) // let Run register and block in Wait
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Run did not return within 1s of cancel (event wait timeout 50ms)")
	}
	if n := lib.openEventSets(); n != 0 {
		t.Errorf("%d event sets left open after Run returned", n)
	}
	if err := tr.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

func TestRunFailsWithoutEventSet(t *testing.T) {
	lib := newMock(t, config.MockNode{Machine: "dgxa100"}, "n")
	lib.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) { return nil, nvml.ERROR_UNKNOWN }
	tr, err := NewTracker(lib, defaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown()
	if err := tr.Run(context.Background()); err == nil {
		t.Fatal("Run succeeded without an event set")
	}
}

func TestSubscribersCoalesceAndUnsubscribe(t *testing.T) {
	h := startHarness(t, nil, nil)
	kept, unsubscribeKept := h.tr.Subscribe()
	defer unsubscribeKept()
	dropped, unsubscribe := h.tr.Subscribe()
	unsubscribe()
	unsubscribe() // idempotent

	for _, pos := range []int{1, 6} {
		if err := h.lib.InjectXid(h.uuid(pos), 79); err != nil {
			t.Fatal(err)
		}
		h.waitHandled()
	}
	for name, ch := range map[string]<-chan struct{}{"kept": kept, "dropped": dropped} {
		pending := len(ch)
		if want := map[string]int{"kept": 1, "dropped": 0}[name]; pending != want {
			t.Errorf("%s subscriber has %d pending notifications after two changes, want %d", name, pending, want)
		}
	}
	if got := h.unhealthy(); !slices.Equal(got, []int{1, 6}) {
		t.Errorf("unhealthy GPUs %v, want [1 6]", got)
	}
}

// BenchmarkHandleXid measures the cost of one critical Xid on the Run
// goroutine (event decoding, health update, quiet-period bookkeeping).
func BenchmarkHandleXid(b *testing.B) {
	lib := newMock(b, config.MockNode{Machine: "dgxh100"}, "n")
	tr, err := NewTracker(lib, TrackerOptions{SplitCount: 10, MemoryScaling: 1, Recovery: recovery})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown()
	st := healthState{recoverAt: map[int]time.Time{}, permanent: map[int]bool{}}
	logger := logr.Discard()
	event := waitResult{ret: nvml.SUCCESS, event: nvml.EventData{
		Device: lib.Devices[3], EventType: nvml.EventTypeXidCriticalError, EventData: 79,
	}}
	b.ReportAllocs()
	for b.Loop() {
		tr.handleWaitResult(logger, event, st)
	}
}
