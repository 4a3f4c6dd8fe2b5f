package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"github.com/karmada-io/karmada/pkg/webhook/clusterresourcebinding"
	"github.com/karmada-io/karmada/pkg/webhook/resourcebinding"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// bindingWebhookName is the MutatingWebhookConfiguration of the bindings.
const bindingWebhookName = "karmada-binding-permanent-id"

// bindingWebhook serves, on 127.0.0.1, the part of karmada-webhook that
// Karmada's controllers cannot do without: Karmada's own mutating handlers
// for ResourceBinding and ClusterResourceBinding, which give every binding
// a permanent-id label. Without it every binding's id is empty, and the
// binding controller takes the Works of every other binding for its own
// orphans and deletes them: a second propagated workload removes the
// first one's pods from the members.
type bindingWebhook struct {
	server *http.Server
	done   chan error
}

// startBindingWebhook serves the handlers with a certificate from the
// control plane's CA and registers them with karmada-apiserver.
func (k *Karmada) startBindingWebhook(ctx context.Context) error {
	scheme := runtime.NewScheme()
	if err := workv1alpha2.Install(scheme); err != nil {
		return fmt.Errorf("binding webhook: %w", err)
	}
	decoder := admission.NewDecoder(scheme)
	mux := http.NewServeMux()
	mux.Handle("/mutate-resourcebinding", &webhook.Admission{Handler: &resourcebinding.MutatingAdmission{Decoder: decoder}})
	mux.Handle("/mutate-clusterresourcebinding", &webhook.Admission{Handler: &clusterresourcebinding.MutatingAdmission{Decoder: decoder}})
	pair, err := k.cp.pki.ca.issue(certRequest{commonName: "karmada-webhook", ips: loopbackIPs(), server: true})
	if err != nil {
		return fmt.Errorf("binding webhook: %w", err)
	}
	cert, err := tls.X509KeyPair(pair.certPEM, pair.keyPEM)
	if err != nil {
		return fmt.Errorf("binding webhook: %w", err)
	}
	lis, err := net.Listen("tcp", loopback+":0")
	if err != nil {
		return fmt.Errorf("binding webhook: listen on %s: %w", loopback, err)
	}
	k.webhook = &bindingWebhook{
		server: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}},
		done: make(chan error, 1),
	}
	go func() { k.webhook.done <- k.webhook.server.ServeTLS(lis, "", "") }()
	url := fmt.Sprintf("https://%s", lis.Addr())
	if err := k.registerBindingWebhook(ctx, url); err != nil {
		return err
	}
	k.cp.logf("%s: binding webhook (Karmada's own handlers) on %s", k.cp.name, url)
	return nil
}

func (k *Karmada) registerBindingWebhook(ctx context.Context, url string) error {
	hook := func(name, path, resource string) admissionregistrationv1.MutatingWebhook {
		return admissionregistrationv1.MutatingWebhook{
			Name:         name,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: ptr.To(url + path), CABundle: k.cp.pki.ca.certPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{workv1alpha2.GroupName}, APIVersions: []string{"v1alpha2"},
					Resources: []string{resource}},
			}},
			// As karmada-webhook is installed: a binding is never created without its id.
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
		}
	}
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: bindingWebhookName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			hook("resourcebinding.karmada.io", "/mutate-resourcebinding", "resourcebindings"),
			hook("clusterresourcebinding.karmada.io", "/mutate-clusterresourcebinding", "clusterresourcebindings"),
		},
	}
	if _, err := k.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("register the binding webhook with %s: %w", k.cp.name, err)
	}
	return nil
}

// stop ends the webhook server; safe on a nil webhook.
func (w *bindingWebhook) stop() error {
	if w == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.server.Shutdown(ctx)
	if err := <-w.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("binding webhook: %w", err)
	}
	return nil
}
