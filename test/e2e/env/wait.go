package env

import (
	"context"
	"fmt"
	"time"
)

// pollInterval is how often Eventually checks; short enough that a test
// waits little past the moment, long enough not to load a small machine.
const pollInterval = 250 * time.Millisecond

// Eventually calls check until it reports done, returns an error, ctx ends
// or timeout passes. check describes what it saw each time; a timeout's
// error names what was awaited and the last thing seen, so that a failure
// says where the environment stood, not only that it was late.
func Eventually(ctx context.Context, timeout time.Duration, what string, check func(ctx context.Context) (done bool, state string, err error)) error {
	start := time.Now()
	deadline := start.Add(timeout)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	last := "not checked yet"
	for {
		done, state, err := check(ctx)
		if state != "" {
			last = state
		}
		switch {
		case err != nil:
			return fmt.Errorf("wait for %s: %w", what, err)
		case done:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("wait for %s: still not so after %s; last seen: %s", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w after %s; last seen: %s", what, ctx.Err(), time.Since(start).Round(time.Millisecond), last)
		case <-ticker.C:
		}
	}
}
