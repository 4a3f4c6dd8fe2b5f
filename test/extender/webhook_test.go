package extendere2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	webhookapp "github.com/tessera-gpu/tessera/cmd/tessera-webhook/app"
	"github.com/tessera-gpu/tessera/pkg/config"
	"github.com/tessera-gpu/tessera/test/cluster"
)

// startWebhook runs the tessera-webhook command in process (test/cluster's
// TesseraWebhook: TLS on 127.0.0.1, registered as the chart registers it)
// and waits until the API server calls it.
func startWebhook(ctx context.Context, t *testing.T, client kubernetes.Interface, configFile string) {
	t.Helper()
	w, err := cluster.NewTesseraWebhook(t.TempDir(), configFile)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- webhookapp.Run(runCtx, w.Options) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := w.Register(ctx, client, time.Minute); err != nil {
		t.Fatal(err)
	}
}

// gpuLimitAndRequest is a container's nvidia.com/gpu limit and request ("" when absent).
func gpuLimitAndRequest(c corev1.Container) (limit, request string) {
	str := func(rl corev1.ResourceList) string {
		if q, ok := rl[config.HAMiGPU]; ok {
			return q.String()
		}
		return ""
	}
	return str(c.Resources.Limits), str(c.Resources.Requests)
}
