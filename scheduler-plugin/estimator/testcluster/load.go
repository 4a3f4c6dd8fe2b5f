package testcluster

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ChurnWhile calls change perSecond times a second (catching up when it
// falls behind, so that the rate holds on a busy machine) while run runs,
// and returns the rate it reached.
func ChurnWhile(perSecond int, change func(), run func()) float64 {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var applied atomic.Int64
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			for applied.Load() < int64(time.Since(start).Seconds()*float64(perSecond)) {
				change()
				applied.Add(1)
			}
		}
	})
	run()
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	return float64(applied.Load()) / elapsed.Seconds()
}

// HeapGrowth is how much the live heap grows by what build returns.
func HeapGrowth(build func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	if after.HeapAlloc < before.HeapAlloc {
		return 0
	}
	return after.HeapAlloc - before.HeapAlloc
}
