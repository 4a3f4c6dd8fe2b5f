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
	token, _, err := ServiceAccountToken(ctx, admin, namespace, name, tokenLifetime)
	if err != nil {
		return err
	}
	data, err := TokenKubeconfig(admin.Host, admin.CAData, token)
	if err != nil {
		return fmt.Errorf("kubeconfig of %s: %w", Identity(namespace, name), err)
	}
	if err := writeFile(path, data); err != nil {
		return fmt.Errorf("kubeconfig of %s: %w", Identity(namespace, name), err)
	}
	return nil
}

// ServiceAccountToken asks the API server of admin (as admin) for a token
// of the ServiceAccount namespace/name that lives for lifetime, and says
// when it expires. An API server may cut a lifetime short
// (--service-account-max-token-expiration): the error says so when it
// did, rather than leave a component to lose its identity halfway.
func ServiceAccountToken(ctx context.Context, admin *rest.Config, namespace, name string, lifetime time.Duration) (string, time.Time, error) {
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token of %s: %w", Identity(namespace, name), err)
	}
	asked := time.Now()
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(lifetime.Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("request a token of %s: %w", Identity(namespace, name), err)
	}
	expires := tr.Status.ExpirationTimestamp.Time
	// A minute of slack: the server counts from its own clock.
	if expires.Before(asked.Add(lifetime - time.Minute)) {
		return "", time.Time{}, fmt.Errorf("token of %s: asked for %s, the API server gave one that expires at %s",
			Identity(namespace, name), lifetime, expires.Format(time.RFC3339))
	}
	return tr.Status.Token, expires, nil
}

// TokenFileConfig is a client configuration for the API server of admin
// that authenticates with the token in tokenFile alone (admin's address
// and CA, none of its credentials); client-go reads the file again every
// minute, so a renewed token reaches running clients.
func TokenFileConfig(admin *rest.Config, tokenFile string) *rest.Config {
	cfg := rest.AnonymousClientConfig(admin)
	cfg.BearerTokenFile = tokenFile
	return cfg
}

// TokenKubeconfig is a kubeconfig for server with a bearer token.
func TokenKubeconfig(server string, caData []byte, token string) ([]byte, error) {
	return kubeconfig(server, caData, &clientcmdapi.AuthInfo{Token: token})
}

// TokenFileKubeconfig is a kubeconfig for server whose bearer token is
// read from tokenFile, which client-go reads again every minute: a token
// renewed in that file reaches a running client.
func TokenFileKubeconfig(server string, caData []byte, tokenFile string) ([]byte, error) {
	return kubeconfig(server, caData, &clientcmdapi.AuthInfo{TokenFile: tokenFile})
}

func kubeconfig(server string, caData []byte, user *clientcmdapi.AuthInfo) ([]byte, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["cluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	cfg.AuthInfos["user"] = user
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	cfg.CurrentContext = "default"
	return clientcmd.Write(*cfg)
}
