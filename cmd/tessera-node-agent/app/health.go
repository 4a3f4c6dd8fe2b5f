package app

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// healthCheck is one named condition of the agent's health.
type healthCheck struct {
	name  string
	check func() error
}

// runChecks runs every check and joins the failures, each named.
func runChecks(checks []healthCheck) error {
	var errs []error
	for _, c := range checks {
		if err := c.check(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// healthHandler serves /healthz from the liveness checks and /readyz from
// the readiness checks. Each answers 200 "ok" when every check passes and
// 503 with one line per failing check otherwise, so that `kubectl describe
// pod` shows what the agent is waiting for.
func healthHandler(liveness, readiness []healthCheck) http.Handler {
	serve := func(checks []healthCheck) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) {
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
	}
	mux := http.NewServeMux()
	mux.Handle("/healthz", serve(liveness))
	mux.Handle("/readyz", serve(readiness))
	return mux
}

// registrationReporter is a device plugin that can say whether it is
// registered with the current kubelet (*deviceplugin.Plugin is one).
type registrationReporter interface {
	Registered() bool
}

// pluginRegisteredCheck reports whether the device plugin is registered
// with the kubelet that serves kubelet.sock now. It reads only the plugin's
// state and the socket files, never the API server.
func pluginRegisteredCheck(plugin registrationReporter) func() error {
	return func() error {
		if !plugin.Registered() {
			return errors.New("not registered with the kubelet (not yet, or the kubelet restarted and registration is pending)")
		}
		return nil
	}
}

// nodePublishedCheck reports whether the Node has carried the GPUs.
func nodePublishedCheck(node string, published func() bool) func() error {
	return func() error {
		if !published() {
			return fmt.Errorf("node %s does not carry the GPU inventory yet", node)
		}
		return nil
	}
}
