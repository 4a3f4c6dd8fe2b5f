package main

import (
	"encoding/base64"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	webhookapp "github.com/tessera-gpu/tessera/cmd/tessera-webhook/app"
	"github.com/tessera-gpu/tessera/deploy/chart"
	"github.com/tessera-gpu/tessera/pkg/admission"
)

// webhookValues turns the webhook on under compat: hami, with changes.
func webhookValues(webhook map[string]any) map[string]any {
	w := map[string]any{"enabled": true, "tlsSecret": "tessera-webhook-tls"}
	for k, v := range webhook {
		w[k] = v
	}
	return map[string]any{"config": map[string]any{"compat": "hami", "hami": map[string]any{"defaultGPUNum": 2}}, "webhook": w}
}

// TestWebhookRender: the webhook's Deployment runs flags the command
// accepts, with the config and certificate mounted where the flags say;
// the Service reaches its HTTPS port; the MutatingWebhookConfiguration is
// pkg/admission's Webhook, pointed at the Service.
func TestWebhookRender(t *testing.T) {
	ca := base64.StdEncoding.EncodeToString([]byte("-----BEGIN CERTIFICATE-----\n"))
	tests := []struct {
		name        string
		webhook     map[string]any
		wantCA      string
		wantInject  string
		wantExclude []string
	}{
		{name: "caBundle", webhook: map[string]any{"caBundle": ca}, wantCA: "-----BEGIN CERTIFICATE-----\n", wantExclude: []string{"kube-system"}},
		{name: "cert-manager injects the CA", webhook: map[string]any{"certManagerCertificate": "gpu/tessera-webhook", "excludeNamespaces": []any{}},
			wantInject: "gpu/tessera-webhook"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderRelease(t, "gpu", webhookValues(tt.webhook))
			if cfg := tesseraConfig(t, r); cfg.HAMi.DefaultGPUNum != 2 {
				t.Errorf("config hami = %+v, want defaultGPUNum 2", cfg.HAMi)
			}
			dep := get[*appsv1.Deployment](t, r, "Deployment", "tessera-webhook")
			spec := dep.Spec.Template.Spec
			c := container(t, spec, "webhook")
			if c.Command[0] != webhookapp.Component {
				t.Errorf("command %v does not run %s", c.Command, webhookapp.Component)
			}
			// Every flag is one the command has (klog's included) ...
			if err := webhookapp.NewCommand().Flags().Parse(c.Command[1:]); err != nil {
				t.Fatalf("flags %v: %v", c.Command, err)
			}
			// ... and the webhook's own validate.
			opts := webhookapp.NewOptions()
			fs := pflag.NewFlagSet("webhook", pflag.ContinueOnError)
			fs.ParseErrorsAllowlist.UnknownFlags = true
			opts.AddFlags(fs)
			if err := fs.Parse(c.Command[1:]); err != nil {
				t.Fatalf("flags %v: %v", c.Command, err)
			}
			if err := opts.Validate(); err != nil {
				t.Fatalf("flags %v: %v", c.Command, err)
			}
			mounts := map[string]string{}
			for _, m := range c.VolumeMounts {
				mounts[m.Name] = m.MountPath
			}
			vols := map[string]corev1.Volume{}
			for _, v := range spec.Volumes {
				vols[v.Name] = v
			}
			if filepath.Dir(opts.ConfigFile) != mounts["config"] || vols["config"].ConfigMap == nil || vols["config"].ConfigMap.Name != "tessera-config" {
				t.Errorf("--config %s is not in the mounted ConfigMap (%v, %+v)", opts.ConfigFile, mounts, vols["config"])
			}
			if filepath.Dir(opts.CertFile) != mounts["tls"] || filepath.Dir(opts.KeyFile) != mounts["tls"] ||
				vols["tls"].Secret == nil || vols["tls"].Secret.SecretName != "tessera-webhook-tls" {
				t.Errorf("certificate %s, %s is not in the mounted Secret (%v, %+v)", opts.CertFile, opts.KeyFile, mounts, vols["tls"])
			}
			if dep.Spec.Template.Labels[admission.OptOutLabel] != admission.OptOutValue || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("webhook pods: labels %v (want the opt-out), automount %v (want false: no API access)", dep.Spec.Template.Labels, spec.AutomountServiceAccountToken)
			}
			ports := map[string]int32{}
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
			if ":"+itoa(ports["https"]) != opts.BindAddress || ":"+itoa(ports["health"]) != opts.HealthBindAddress {
				t.Errorf("ports %v, flags %s %s", ports, opts.BindAddress, opts.HealthBindAddress)
			}

			svc := get[*corev1.Service](t, r, "Service", "tessera-webhook")
			if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != "https" || !reflect.DeepEqual(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
				t.Errorf("Service %+v does not reach the webhook's https port", svc.Spec)
			}
			mwc := get[*admissionregistrationv1.MutatingWebhookConfiguration](t, r, "MutatingWebhookConfiguration", "tessera-webhook")
			if len(mwc.Webhooks) != 1 {
				t.Fatalf("%d webhooks", len(mwc.Webhooks))
			}
			got := mwc.Webhooks[0]
			s := got.ClientConfig.Service
			if s == nil || s.Name != svc.Name || s.Namespace != "gpu" || s.Path == nil || *s.Path != admission.MutatePodsPath || s.Port == nil || *s.Port != svc.Spec.Ports[0].Port {
				t.Errorf("clientConfig %+v does not call the Service at %s", got.ClientConfig, admission.MutatePodsPath)
			}
			if string(got.ClientConfig.CABundle) != tt.wantCA || mwc.Annotations["cert-manager.io/inject-ca-from"] != tt.wantInject {
				t.Errorf("caBundle %q, inject annotation %q", got.ClientConfig.CABundle, mwc.Annotations["cert-manager.io/inject-ca-from"])
			}
			if want := admission.Webhook(got.ClientConfig, tt.wantExclude); !reflect.DeepEqual(got, want) {
				t.Errorf("the chart's webhook differs from pkg/admission.Webhook:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }

// TestWebhookOffByDefault: the default release has no webhook, and a
// webhook that cannot work is refused at render time with the reason.
func TestWebhookOffByDefault(t *testing.T) {
	r := renderRelease(t, "kube-system", nil)
	for _, kind := range []string{"Deployment", "Service", "MutatingWebhookConfiguration"} {
		if r.has(kind, "tessera-webhook") {
			t.Errorf("default render has %s tessera-webhook", kind)
		}
	}
	tests := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"without compat: hami", map[string]any{"webhook": map[string]any{"enabled": true, "tlsSecret": "s", "caBundle": "Y2E="}}, "needs config.compat=hami"},
		{"without a certificate", webhookValues(map[string]any{"tlsSecret": "", "caBundle": "Y2E="}), "needs webhook.tlsSecret"},
		{"without a CA", webhookValues(nil), "needs webhook.caBundle or webhook.certManagerCertificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chart.Render(chart.Options{ChartDir: filepath.Join(deployDir, "helm", "tessera"), ReleaseName: ReleaseName, Namespace: "x", Values: tt.values})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Render error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}
