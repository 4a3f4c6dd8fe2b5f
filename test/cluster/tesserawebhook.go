package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	webhookapp "github.com/tessera-gpu/tessera/cmd/tessera-webhook/app"
	"github.com/tessera-gpu/tessera/pkg/admission"
	"github.com/tessera-gpu/tessera/pkg/config"
)

// TesseraWebhook is Tessera's admission webhook (cmd/tessera-webhook) as a
// test serves it: on 127.0.0.1, over TLS, with a certificate that
// Register tells the API server to trust. The test runs
// webhookapp.Run(ctx, Options) as it runs its other components.
type TesseraWebhook struct {
	Options *webhookapp.Options
	caPEM   []byte
	// ports are held from here until Run serves them (Options.Listen).
	ports *HeldPorts
}

// NewTesseraWebhook prepares the webhook's flags: configFile, a serving
// certificate written to dir, and ports held for it and its health probes
// (the caller runs Close once Run has returned).
func NewTesseraWebhook(dir, configFile string) (*TesseraWebhook, error) {
	certFile, keyFile, caPEM, err := ServingCert(dir, "tessera-webhook")
	if err != nil {
		return nil, err
	}
	held := &HeldPorts{}
	opts := webhookapp.NewOptions()
	opts.ConfigFile, opts.CertFile, opts.KeyFile = configFile, certFile, keyFile
	opts.Listen = held.Listen
	if opts.BindAddress, err = held.Hold(); err == nil {
		opts.HealthBindAddress, err = held.Hold()
	}
	if err == nil {
		err = opts.Validate()
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("tessera-webhook flags: %w", err), held.Close())
	}
	return &TesseraWebhook{Options: opts, caPEM: caPEM, ports: held}, nil
}

// Close closes the ports Run did not take (it failed before serving).
func (w *TesseraWebhook) Close() error { return w.ports.Close() }

// Register creates the MutatingWebhookConfiguration that the chart renders
// (pkg/admission.Webhook), with a URL where the chart names its Service,
// and waits until the API server calls it. The API server picks a new
// configuration up asynchronously, so a pod created at once could be
// admitted without it: a pod that needs the webhook is created as a
// server-side dry run (which calls webhooks whose sideEffects are None)
// until the answer carries the nvidia.com/gpu the webhook adds.
func (w *TesseraWebhook) Register(ctx context.Context, client kubernetes.Interface, timeout time.Duration) error {
	url := "https://" + w.Options.BindAddress + admission.MutatePodsPath
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tessera-webhook"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			admission.Webhook(admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: w.caPEM}, []string{"kube-system"}),
		},
	}
	if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register the Tessera webhook: %w", err)
	}
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "tessera-webhook-probe"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "none", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{config.HAMiMemory: *resource.NewQuantity(1, resource.DecimalSI)},
		}}}},
	}
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := client.CoreV1().Pods(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			last = err
			return false, nil
		}
		_, mutated := got.Spec.Containers[0].Resources.Limits[config.HAMiGPU]
		last = fmt.Errorf("a dry run of pod %s/%s got no %s", probe.Namespace, probe.Name, config.HAMiGPU)
		return mutated, nil
	})
	if err != nil {
		return fmt.Errorf("the API server does not call the Tessera webhook at %s: %w (last dry run: %v)", url, err, last)
	}
	return nil
}
