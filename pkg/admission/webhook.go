package admission

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// WebhookName names the webhook in its MutatingWebhookConfiguration.
const WebhookName = "hami-defaults.tessera.io"

// OptOutLabel on a namespace or a pod, set to OptOutValue, keeps the webhook
// away from it. It is HAMi's own opt-out label, so that namespaces and pods
// a HAMi cluster already exempted stay exempt.
const (
	OptOutLabel = "hami.io/webhook"
	OptOutValue = "ignore"
)

// Webhook is the webhook as it is registered: the chart's
// MutatingWebhookConfiguration renders exactly this (deploy/render checks
// it), with the client config and excluded namespaces of the release.
//
// Its failure policy is Ignore, as HAMi's chart ships it: when the webhook
// cannot be reached a pod is still created, unmutated, and the scheduler
// extender then leaves a pod that relied on it Pending with an event that
// names the missing nvidia.com/gpu; Fail would instead block the creation
// of every pod the selectors match whenever the webhook is down.
func Webhook(client admissionregistrationv1.WebhookClientConfig, excludeNamespaces []string) admissionregistrationv1.MutatingWebhook {
	optOut := metav1.LabelSelectorRequirement{Key: OptOutLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{OptOutValue}}
	namespaces := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{optOut}}
	if len(excludeNamespaces) > 0 {
		namespaces.MatchExpressions = append(namespaces.MatchExpressions, metav1.LabelSelectorRequirement{
			Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpNotIn, Values: excludeNamespaces,
		})
	}
	return admissionregistrationv1.MutatingWebhook{
		Name:         WebhookName,
		ClientConfig: client,
		Rules: []admissionregistrationv1.RuleWithOperations{{
			// Limits can only be given when a pod is created.
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule: admissionregistrationv1.Rule{
				APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				Scope: ptr.To(admissionregistrationv1.NamespacedScope),
			},
		}},
		FailurePolicy:     ptr.To(admissionregistrationv1.Ignore),
		MatchPolicy:       ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector: namespaces,
		ObjectSelector:    &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{optOut}},
		SideEffects:       ptr.To(admissionregistrationv1.SideEffectClassNone),
		// Another webhook that adds HAMi's memory to a container after
		// this one ran is not something HAMi handles either.
		ReinvocationPolicy:      ptr.To(admissionregistrationv1.NeverReinvocationPolicy),
		TimeoutSeconds:          ptr.To[int32](10),
		AdmissionReviewVersions: []string{"v1"},
	}
}
