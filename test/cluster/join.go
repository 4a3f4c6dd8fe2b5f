package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	clusterv1alpha1 "github.com/karmada-io/karmada/pkg/apis/cluster/v1alpha1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// memberTokenLifetime bounds the token Karmada uses for a member: longer
// than any test, short enough not to matter if a directory is kept.
const memberTokenLifetime = 24 * time.Hour

// noEstimatorPort is the target of an estimator Service that no test has
// set: nothing listens on port 1, so karmada-scheduler's dial fails at once
// on loopback instead of resolving *.svc.cluster.local names through DNS.
const noEstimatorPort = 1

// JoinMember registers a member cluster with Karmada in Push mode, as
// `karmadactl join` does: on the member, a service account
// karmada-cluster/karmada-NAME bound to cluster-admin and a token for it
// (Karmada's cluster clients take a bearer token, not a client certificate),
// and a service account karmada-cluster/karmada-impersonator that may only
// impersonate (what Karmada's cluster proxy sends requests as); on Karmada,
// the Secrets karmada-cluster/NAME (the token and the member's CA) and
// karmada-cluster/NAME-impersonator, and the Cluster NAME pointing at the
// member's 127.0.0.1 endpoint. Unless SetEstimator was called for NAME, it also points NAME's
// estimator Service at a closed loopback port. It returns once the
// Cluster reports Ready.
func (k *Karmada) JoinMember(ctx context.Context, name string, member *Member) error {
	token, err := memberToken(ctx, member, "karmada-"+name, clusterAdminRole)
	if err != nil {
		return fmt.Errorf("join member %s: %w", name, err)
	}
	impersonatorToken, err := memberToken(ctx, member, impersonatorAccount, impersonatorRole)
	if err != nil {
		return fmt.Errorf("join member %s: %w", name, err)
	}
	if _, err := k.client.CoreV1().Services(karmadaSystemNamespace).Get(ctx, estimatorServicePrefix+name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if err := k.SetEstimator(ctx, name, noEstimatorPort); err != nil {
			return fmt.Errorf("join member %s: %w", name, err)
		}
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: karmadaClusterNamespace},
		Data: map[string][]byte{
			clusterv1alpha1.SecretTokenKey:  []byte(token),
			clusterv1alpha1.SecretCADataKey: member.cp.pki.ca.certPEM,
		},
	}
	if _, err := k.client.CoreV1().Secrets(karmadaClusterNamespace).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("join member %s: create secret: %w", name, err)
	}
	impersonator := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-impersonator", Namespace: karmadaClusterNamespace},
		Data:       map[string][]byte{clusterv1alpha1.SecretTokenKey: []byte(impersonatorToken)},
	}
	if _, err := k.client.CoreV1().Secrets(karmadaClusterNamespace).Create(ctx, impersonator, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("join member %s: create impersonator secret: %w", name, err)
	}
	cluster := &clusterv1alpha1.Cluster{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: clusterv1alpha1.ClusterSpec{
			SyncMode:    clusterv1alpha1.Push,
			APIEndpoint: member.Server(),
			SecretRef:   &clusterv1alpha1.LocalSecretReference{Namespace: karmadaClusterNamespace, Name: name},
			// Karmada's cluster proxy (/apis/cluster.karmada.io/v1alpha1/clusters/NAME/proxy)
			// forwards each request with this token, impersonating the caller.
			ImpersonatorSecretRef: &clusterv1alpha1.LocalSecretReference{Namespace: karmadaClusterNamespace, Name: name + "-impersonator"},
		},
	}
	if _, err := k.karmadaClient.ClusterV1alpha1().Clusters().Create(ctx, cluster, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("join member %s: create Cluster: %w", name, err)
	}
	var last string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, k.opts.StartTimeout, true, func(ctx context.Context) (bool, error) {
		c, err := k.karmadaClient.ClusterV1alpha1().Clusters().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		ready := meta.FindStatusCondition(c.Status.Conditions, clusterv1alpha1.ClusterConditionReady)
		if ready == nil {
			last = "no Ready condition yet"
			return false, nil
		}
		last = fmt.Sprintf("Ready=%s (%s: %s)", ready.Status, ready.Reason, ready.Message)
		return ready.Status == metav1.ConditionTrue, nil
	})
	if err != nil {
		log := filepath.Join(k.cp.dir, "karmada-controller-manager.log")
		return fmt.Errorf("join member %s: Cluster not Ready after %s: %s; last lines of %s:\n%s", name, k.opts.StartTimeout, last, log, fileTail(log, tailLines))
	}
	k.cp.logf("%s: member %s (%s) joined and Ready", k.cp.name, name, member.Server())
	return nil
}

// The member's service accounts for Karmada and the roles they are bound to.
const (
	clusterAdminRole    = "cluster-admin"
	impersonatorAccount = "karmada-impersonator"
	impersonatorRole    = "karmada-impersonator"
)

// memberToken creates a service account on the member bound to role (the
// impersonator role is created here) and returns a token for it from the
// TokenRequest API (which needs no kube-controller-manager).
func memberToken(ctx context.Context, member *Member, account, role string) (string, error) {
	client := member.Client()
	if err := ensureNamespace(ctx, client, karmadaClusterNamespace); err != nil {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account, Namespace: karmadaClusterNamespace}}
	if _, err := client.CoreV1().ServiceAccounts(karmadaClusterNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("create service account %s on %s: %w", account, member.Name(), err)
	}
	if role == impersonatorRole {
		if err := ensureImpersonatorRole(ctx, member); err != nil {
			return "", err
		}
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: account},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: account, Namespace: karmadaClusterNamespace}},
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("bind %s to %s on %s: %w", account, role, member.Name(), err)
	}
	tr, err := client.CoreV1().ServiceAccounts(karmadaClusterNamespace).CreateToken(ctx, account, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(memberTokenLifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("request token for %s on %s: %w", account, member.Name(), err)
	}
	return tr.Status.Token, nil
}

// ensureImpersonatorRole creates the ClusterRole that lets Karmada's proxy
// act as its callers on the member and nothing else, as karmadactl join's.
func ensureImpersonatorRole(ctx context.Context, member *Member) error {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: impersonatorRole},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""},
			Resources: []string{"users", "groups", "serviceaccounts"},
			Verbs:     []string{"impersonate"},
		}},
	}
	if _, err := member.Client().RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create ClusterRole %s on %s: %w", impersonatorRole, member.Name(), err)
	}
	return nil
}

// SetEstimator points karmada-scheduler at the estimator of cluster
// clusterName, listening on 127.0.0.1:port (plain gRPC: karmada-scheduler is
// started without estimator TLS files). It writes the ExternalName Service
// karmada-system/karmada-scheduler-estimator-CLUSTER that karmada-scheduler
// resolves, with the scheduler's estimator port as its port and the real
// port as its target. Call it before JoinMember: karmada-scheduler dials an
// estimator when it first sees the cluster, and later only on cluster events.
func (k *Karmada) SetEstimator(ctx context.Context, clusterName string, port int) error {
	name := estimatorServicePrefix + clusterName
	services := k.client.CoreV1().Services(karmadaSystemNamespace)
	want := corev1.ServiceSpec{
		Type:         corev1.ServiceTypeExternalName,
		ExternalName: loopback,
		Ports: []corev1.ServicePort{{
			Name: "grpc", Protocol: corev1.ProtocolTCP,
			Port: int32(k.opts.EstimatorPort), TargetPort: intstr.FromInt32(int32(port)),
		}},
	}
	current, err := services.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = services.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: karmadaSystemNamespace}, Spec: want}, metav1.CreateOptions{})
	case err == nil:
		current.Spec = want
		_, err = services.Update(ctx, current, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("set estimator of cluster %s to 127.0.0.1:%d: %w", clusterName, port, err)
	}
	return nil
}

// installCRDs creates every CustomResourceDefinition in dir (one per YAML
// file) and waits until all are Established.
func installCRDs(ctx context.Context, config *rest.Config, dir string, timeout time.Duration) error {
	client, err := apiextensionsclient.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("install CRDs: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("install CRDs: no YAML files in %s (%v)", dir, err)
	}
	sort.Strings(files)
	var names []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("install CRDs: %w", err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil || crd.Name == "" {
			return fmt.Errorf("install CRDs: %s is not a CustomResourceDefinition: %v", file, err)
		}
		if _, err := client.ApiextensionsV1().CustomResourceDefinitions().Create(ctx, &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("install CRD %s from %s: %w", crd.Name, file, err)
		}
		names = append(names, crd.Name)
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			crd, err := client.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("install CRDs: %s not Established after %s", name, timeout)
		}
	}
	return nil
}
