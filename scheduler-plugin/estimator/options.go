package estimator

import "sync"

// Option configures the plugin.
type Option func(*Plugin)

// Counter is the part of a Prometheus counter the plugin uses.
type Counter interface{ Inc() }

// WithSetSearchBudgetCounter counts the component-set answers whose exact
// search ran out of its budget (the answer is then a lower bound).
func WithSetSearchBudgetCounter(c Counter) Option {
	return func(p *Plugin) { p.budgetCounter = c }
}

// WithoutMemo makes the plugin compute every answer from the nodes, as
// before answers were memoised: the reference the memo is tested against.
func WithoutMemo() Option {
	return func(p *Plugin) { p.memo = nil }
}

// maxLoggedWorkloads bounds the memory of onceSet: when it is full it
// starts over, so a long-running estimator logs a workload again after
// this many others, rather than growing without bound.
const maxLoggedWorkloads = 4096

// onceSet remembers which keys were seen, so that a workload is logged once.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// first reports whether key is new, and remembers it.
func (o *onceSet) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[key]; ok {
		return false
	}
	if o.seen == nil || len(o.seen) >= maxLoggedWorkloads {
		o.seen = make(map[string]struct{})
	}
	o.seen[key] = struct{}{}
	return true
}
