// Package informerstop bounds how long a component waits for its
// informers to stop.
//
// client-go v0.35's reflector, listing through a watch (the WatchListClient
// feature, on by default), waits out its retry back-off without looking at
// its stop channel (tools/cache/reflector.go, watchList: `<-r.backoffManager
// .Backoff().C()`). The back-off grows while the API server is unreachable,
// up to 30 s, so SharedInformerFactory.Shutdown can block that long after
// an outage. Tessera's chaos run (test/e2e) caught a node agent taking more
// than 30 s to stop this way. A component on its way out does not need to
// wait for that: the goroutine ends by itself once the back-off fires.
package informerstop

import (
	"time"

	"k8s.io/klog/v2"
)

// Timeout is how long Shutdown waits by default.
const Timeout = 5 * time.Second

// Shutdowner is what Shutdown stops: a SharedInformerFactory.
type Shutdowner interface{ Shutdown() }

// Shutdown calls factory.Shutdown and waits at most timeout for it. It
// says whether the informers stopped in time; if not, it logs what is left
// running (named by what) and returns, leaving Shutdown to finish alone.
func Shutdown(logger klog.Logger, what string, factory Shutdowner, timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		defer close(done)
		factory.Shutdown()
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		logger.Info("Informers did not stop in time; leaving them to end on their own (client-go's watch-list retry back-off does not watch its stop channel)",
			"informers", what, "waited", timeout)
		return false
	}
}
