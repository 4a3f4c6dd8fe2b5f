package install

import (
	"context"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// tokenLifetime outlives any test; the API server's maximum is longer.
const tokenLifetime = 2 * time.Hour

// Identity is a ServiceAccount as the API server names its user.
func Identity(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// ServiceAccountKubeconfig asks the API server of admin (as admin) for a
// token of the ServiceAccount namespace/name through the TokenRequest API,
// as the kubelet does for a pod's projected token, and writes a kubeconfig
// at path that holds that token and nothing of admin's credentials. The
// ServiceAccount must exist: the chart creates it.
func ServiceAccountKubeconfig(ctx context.Context, admin *rest.Config, namespace, name, path string) error {
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return fmt.Errorf("token of %s: %w", Identity(namespace, name), err)
	}
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(tokenLifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("request a token of %s: %w", Identity(namespace, name), err)
	}
	data, err := TokenKubeconfig(admin.Host, admin.CAData, tr.Status.Token)
	if err != nil {
		return fmt.Errorf("kubeconfig of %s: %w", Identity(namespace, name), err)
	}
	if err := writeFile(path, data); err != nil {
		return fmt.Errorf("kubeconfig of %s: %w", Identity(namespace, name), err)
	}
	return nil
}

// TokenKubeconfig is a kubeconfig for server with a bearer token.
func TokenKubeconfig(server string, caData []byte, token string) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	cfg.CurrentContext = "default"
	return clientcmd.Write(*cfg)
}
