package main

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func rule(group, resource string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs}
}

// Each component's rules: exactly the verbs its code uses (see the comments
// in the templates for which call needs which verb).
var (
	nodeAgentRules = []rbacv1.PolicyRule{
		rule("", "pods", "get", "list", "watch", "patch"),
		rule("", "nodes", "get", "list", "watch", "patch"),
		rule("", "nodes/status", "patch"),
		rule("", "events", "create", "patch"),
	}
	extenderRules = []rbacv1.PolicyRule{
		rule("", "nodes", "list", "watch"),
		rule("", "pods", "get", "list", "watch", "patch"),
		rule("", "pods/binding", "create"),
		rule("", "events", "create", "patch"),
	}
	leaseRules = []rbacv1.PolicyRule{
		rule("coordination.k8s.io", "leases", "create"),
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
			ResourceNames: []string{"tessera-scheduler"}, Verbs: []string{"get", "update"}},
	}
	// fleet.Reader: list Karmada's clusters, GET through their proxy.
	dashboardRules = []rbacv1.PolicyRule{
		rule("cluster.karmada.io", "clusters", "get", "list"),
		rule("cluster.karmada.io", "clusters/proxy", "get"),
	}
	// In a member: what Karmada's cluster proxy does there as the
	// dashboard's identity (fleet.Reader lists nodes and pods).
	dashboardReaderRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes", "pods"}, Verbs: []string{"list"}},
	}
	estimatorRules = []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes", "pods"}, Verbs: []string{"list", "watch"}},
		rule("", "resourcequotas", "list", "watch"),
		{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets"}, Verbs: []string{"list", "watch"}},
	}
)

// binding is what a (Cluster)RoleBinding grants to whom.
type binding struct {
	roleRef  rbacv1.RoleRef
	subjects []rbacv1.Subject
	ns       string
}

func sa(name, ns string) rbacv1.Subject {
	return rbacv1.Subject{Kind: "ServiceAccount", Name: name, Namespace: ns}
}

func clusterRoleRef(name string) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
}

func roleRef(name string) rbacv1.RoleRef {
	return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}
}

// TestRBACGrantsOnlyWhatIsUsed compares every role and binding the chart
// renders with the table: a rule added, widened or lost fails, and so does
// any role or binding the table does not know.
func TestRBACGrantsOnlyWhatIsUsed(t *testing.T) {
	const ns = "kube-system"
	memberSchedulerRoles := map[string][]rbacv1.PolicyRule{
		"ClusterRole/tessera-node-agent":         nodeAgentRules,
		"ClusterRole/tessera-scheduler-extender": extenderRules,
		"Role/tessera-scheduler-leases":          leaseRules,
	}
	memberSchedulerBindings := map[string]binding{
		"ClusterRoleBinding/tessera-node-agent": {clusterRoleRef("tessera-node-agent"), []rbacv1.Subject{sa("tessera-node-agent", ns)}, ""},
		"ClusterRoleBinding/tessera-scheduler-kube-scheduler": {clusterRoleRef("system:kube-scheduler"),
			[]rbacv1.Subject{sa("tessera-scheduler", ns)}, ""},
		"ClusterRoleBinding/tessera-scheduler-volume-scheduler": {clusterRoleRef("system:volume-scheduler"),
			[]rbacv1.Subject{sa("tessera-scheduler", ns)}, ""},
		"RoleBinding/tessera-scheduler-authentication-reader": {roleRef("extension-apiserver-authentication-reader"),
			[]rbacv1.Subject{sa("tessera-scheduler", ns)}, "kube-system"},
		"ClusterRoleBinding/tessera-scheduler-extender": {clusterRoleRef("tessera-scheduler-extender"),
			[]rbacv1.Subject{sa("tessera-scheduler", ns)}, ""},
		"RoleBinding/tessera-scheduler-leases": {roleRef("tessera-scheduler-leases"), []rbacv1.Subject{sa("tessera-scheduler", ns)}, ns},
	}
	withEstimator := func(subjects ...rbacv1.Subject) (map[string][]rbacv1.PolicyRule, map[string]binding) {
		roles := map[string][]rbacv1.PolicyRule{"ClusterRole/tessera-estimator": estimatorRules}
		bindings := map[string]binding{"ClusterRoleBinding/tessera-estimator": {clusterRoleRef("tessera-estimator"), subjects, ""}}
		for k, v := range memberSchedulerRoles {
			roles[k] = v
		}
		for k, v := range memberSchedulerBindings {
			bindings[k] = v
		}
		return roles, bindings
	}
	accessRoles, accessBindings := withEstimator(sa("tessera-estimator-reader", "kube-system"))
	inClusterRoles, inClusterBindings := withEstimator(sa("tessera-estimator", ns))
	// The dashboard's reader in a member, beside the member's components.
	readerRoles := maps.Clone(memberSchedulerRoles)
	readerRoles["ClusterRole/tessera-dashboard-reader"] = dashboardReaderRules
	readerBindings := maps.Clone(memberSchedulerBindings)
	readerBindings["ClusterRoleBinding/tessera-dashboard-reader"] = binding{clusterRoleRef("tessera-dashboard-reader"),
		[]rbacv1.Subject{sa("tessera-dashboard", "karmada-system")}, ""}
	tests := []struct {
		name         string
		values       map[string]any
		valuesFiles  []string
		wantRoles    map[string][]rbacv1.PolicyRule
		wantBindings map[string]binding
	}{
		{name: "defaults", wantRoles: memberSchedulerRoles, wantBindings: memberSchedulerBindings},
		{name: "estimator reading its own cluster", values: map[string]any{"estimator": map[string]any{"enabled": true,
			"clusters": []any{map[string]any{"name": "local"}}}}, wantRoles: inClusterRoles, wantBindings: inClusterBindings},
		{name: "member access for a remote estimator", valuesFiles: []string{"examples/member-estimator-access.yaml"},
			wantRoles: accessRoles, wantBindings: accessBindings},
		// Estimators reading members through kubeconfigs need no RBAC where they run.
		{name: "Karmada host", valuesFiles: []string{"examples/karmada-host.yaml"}},
		{name: "rbac.create off", values: map[string]any{"rbac": map[string]any{"create": false}}},
		// The dashboard's identity in the Karmada API server: nothing else.
		{name: "dashboard access in Karmada", values: map[string]any{"nodeAgent": map[string]any{"enabled": false},
			"scheduler": map[string]any{"enabled": false}, "dashboard": map[string]any{"karmadaAccess": map[string]any{"enabled": true}}},
			wantRoles:    map[string][]rbacv1.PolicyRule{"ClusterRole/tessera-dashboard": dashboardRules},
			wantBindings: map[string]binding{"ClusterRoleBinding/tessera-dashboard": {clusterRoleRef("tessera-dashboard"), []rbacv1.Subject{sa("tessera-dashboard", ns)}, ""}}},
		// dashboard.memberAccess: Karmada's cluster proxy lists nodes and pods as the dashboard.
		{name: "dashboard access in a member", values: map[string]any{"dashboard": map[string]any{"memberAccess": map[string]any{"enabled": true}}},
			wantRoles: readerRoles, wantBindings: readerBindings},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderRelease(t, ns, tt.values, tt.valuesFiles...)
			gotRoles := map[string][]rbacv1.PolicyRule{}
			gotBindings := map[string]binding{}
			for _, o := range r.objects {
				switch obj := o.typed.(type) {
				case *rbacv1.ClusterRole:
					gotRoles[o.key()] = obj.Rules
				case *rbacv1.Role:
					gotRoles[o.key()] = obj.Rules
					if obj.Namespace != ns {
						t.Errorf("%s is in namespace %s", o.key(), obj.Namespace)
					}
				case *rbacv1.ClusterRoleBinding:
					gotBindings[o.key()] = binding{obj.RoleRef, obj.Subjects, ""}
				case *rbacv1.RoleBinding:
					gotBindings[o.key()] = binding{obj.RoleRef, obj.Subjects, obj.Namespace}
				}
			}
			compareMaps(t, "role", gotRoles, tt.wantRoles)
			compareMaps(t, "binding", gotBindings, tt.wantBindings)
			for key, rules := range gotRoles {
				for _, r := range rules {
					if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, "*") {
						t.Errorf("%s grants a wildcard: %+v", key, r)
					}
				}
			}
		})
	}
}

func compareMaps[V any](t *testing.T, what string, got, want map[string]V) {
	t.Helper()
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing %s %s", what, k)
		case !reflect.DeepEqual(g, w):
			t.Errorf("%s %s:\n got %+v\nwant %+v", what, k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s %s: %+v", what, k, got[k])
		}
	}
}
