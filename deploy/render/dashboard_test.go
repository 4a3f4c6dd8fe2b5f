package main

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// TestDashboardRender: dashboard.enabled renders the fleet page's
// Deployment, Service, ServiceAccount and read-only ClusterRole; the pod
// reads Karmada with the kubeconfig Secret and mounts no token of its own.
func TestDashboardRender(t *testing.T) {
	const ns = "karmada-system"
	tests := []struct {
		name       string
		secret     string
		wantArgs   []string
		wantMount  bool
		wantSecret bool // the token Secret of dashboard.karmadaAccess
		access     bool
	}{
		{name: "with a kubeconfig of Karmada", secret: "karmada-dashboard-kubeconfig",
			wantArgs: []string{"dashboard", "--listen=0.0.0.0:8080", "--refresh=10s", "--timeout=15s", "--kubeconfig=/etc/tessera/karmada/kubeconfig"}},
		{name: "in-cluster identity", wantArgs: []string{"dashboard", "--listen=0.0.0.0:8080"}, wantMount: true},
		{name: "with its identity in the same release", access: true, wantArgs: []string{"dashboard"}, wantMount: true, wantSecret: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderRelease(t, ns, map[string]any{
				"nodeAgent": map[string]any{"enabled": false}, "scheduler": map[string]any{"enabled": false},
				"dashboard": map[string]any{"enabled": true, "kubeconfigSecret": tt.secret, "karmadaAccess": map[string]any{"enabled": tt.access}},
			})
			dep := get[*appsv1.Deployment](t, r, "Deployment", "tessera-dashboard")
			spec := dep.Spec.Template.Spec
			c := container(t, spec, "dashboard")
			for _, a := range tt.wantArgs {
				if !slices.Contains(c.Args, a) {
					t.Errorf("args %v lack %s", c.Args, a)
				}
			}
			if spec.ServiceAccountName != "tessera-dashboard" || *spec.AutomountServiceAccountToken != tt.wantMount {
				t.Errorf("service account %q automount %v, want tessera-dashboard and %v", spec.ServiceAccountName, *spec.AutomountServiceAccountToken, tt.wantMount)
			}
			if sc := c.SecurityContext; sc == nil || !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation {
				t.Errorf("container security context %+v: want a read-only root and no privilege escalation", sc)
			}
			svc := get[*corev1.Service](t, r, "Service", "tessera-dashboard")
			if svc.Spec.Type != corev1.ServiceTypeClusterIP || svc.Spec.Ports[0].Port != 8080 {
				t.Errorf("Service %s type %s port %d, want ClusterIP 8080", svc.Name, svc.Spec.Type, svc.Spec.Ports[0].Port)
			}
			role := get[*rbacv1.ClusterRole](t, r, "ClusterRole", "tessera-dashboard")
			if !slices.EqualFunc(role.Rules, dashboardRules, func(a, b rbacv1.PolicyRule) bool {
				return slices.Equal(a.APIGroups, b.APIGroups) && slices.Equal(a.Resources, b.Resources) && slices.Equal(a.Verbs, b.Verbs)
			}) {
				t.Errorf("dashboard rules %+v, want %+v", role.Rules, dashboardRules)
			}
			if got := r.has("Secret", "tessera-dashboard-token"); got != tt.wantSecret {
				t.Errorf("token Secret rendered %v, want %v", got, tt.wantSecret)
			}
		})
	}
}
