package app

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tessera-gpu/tessera/deviceplugin"
)

// healthCheck is one named condition of the agent's health.
type healthCheck struct {
	name  string
	check func() error
}

// healthHandler serves /healthz and /readyz. Both answer 200 "ok" when every
// check passes and 503 with one line per failing check otherwise, so that
// `kubectl describe pod` shows what the agent is waiting for.
func healthHandler(checks []healthCheck) http.Handler {
	serve := func(w http.ResponseWriter, _ *http.Request) {
		var failed []string
		for _, c := range checks {
			if err := c.check(); err != nil {
				failed = append(failed, fmt.Sprintf("%s: %v", c.name, err))
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, strings.Join(failed, "\n"))
			return
		}
		fmt.Fprintln(w, "ok")
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", serve)
	mux.HandleFunc("/readyz", serve)
	return mux
}

// registrationReporter is implemented by a device plugin that can say
// whether it is registered with the current kubelet.
type registrationReporter interface {
	Registered() bool
}

// pluginRegisteredCheck reports whether the device plugin is registered
// with the kubelet. deviceplugin.Plugin does not export its registration
// state yet; until it implements registrationReporter, the check uses the
// closest thing visible from outside: a kubelet holds a ListAndWatch stream
// (which it opens only after the plugin registered), seen through the
// device source the plugin subscribes to once per stream.
func pluginRegisteredCheck(plugin any, watched func() bool) func() error {
	if r, ok := plugin.(registrationReporter); ok {
		return func() error {
			if !r.Registered() {
				return errors.New("not registered with the kubelet yet")
			}
			return nil
		}
	}
	return func() error {
		if !watched() {
			return errors.New("no kubelet is watching the device list yet (the plugin is not registered, or the kubelet has not connected)")
		}
		return nil
	}
}

// watchedDevices is the GPU tracker as the device plugin sees it. It counts
// the plugin's open subscriptions: the plugin holds one per ListAndWatch
// stream, so a positive count means a kubelet is receiving the device list.
type watchedDevices struct {
	deviceplugin.DeviceSource
	open atomic.Int64
}

func (w *watchedDevices) Subscribe() (<-chan struct{}, func()) {
	ch, unsubscribe := w.DeviceSource.Subscribe()
	w.open.Add(1)
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.open.Add(-1)
			unsubscribe()
		})
	}
}

// watched reports whether any subscription is open.
func (w *watchedDevices) watched() bool { return w.open.Load() > 0 }

// nodePublishedCheck reports whether the Node has carried the GPUs.
func nodePublishedCheck(node string, published func() bool) func() error {
	return func() error {
		if !published() {
			return fmt.Errorf("node %s does not carry the GPU inventory yet", node)
		}
		return nil
	}
}
