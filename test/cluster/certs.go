package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Certificates are short-lived: a test cluster lives minutes. NotBefore is
// back-dated so that a little clock skew between the processes never matters.
const (
	certValidity = 24 * time.Hour
	certBackdate = time.Hour
)

// authority is a self-signed certificate authority that issues the cluster's
// serving and client certificates. ECDSA P-256 keeps key generation in the
// milliseconds, which matters when every test starts its own cluster.
type authority struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

func newAuthority(commonName string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key of CA %s: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-certBackdate),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("self-sign CA %s: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA %s: %w", commonName, err)
	}
	return &authority{cert: cert, key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// certRequest says what a leaf certificate is for.
type certRequest struct {
	commonName    string
	organizations []string // for client certificates: the user's groups
	dnsNames      []string
	ips           []net.IP
	server        bool // may serve TLS
	client        bool // may authenticate as a client
}

// keyPair is a PEM certificate and its PEM (PKCS#8) private key.
type keyPair struct {
	certPEM []byte
	keyPEM  []byte
}

func (a *authority) issue(req certRequest) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key for %s: %w", req.commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return keyPair{}, err
	}
	var usages []x509.ExtKeyUsage
	if req.server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if req.client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.commonName, Organization: req.organizations},
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  usages,
		DNSNames:     req.dnsNames,
		IPAddresses:  req.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, a.cert, key.Public(), a.key)
	if err != nil {
		return keyPair{}, fmt.Errorf("sign certificate for %s: %w", req.commonName, err)
	}
	keyPEM, err := privateKeyPEM(key)
	if err != nil {
		return keyPair{}, fmt.Errorf("encode key for %s: %w", req.commonName, err)
	}
	return keyPair{certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM: keyPEM}, nil
}

// write stores the pair as DIR/NAME.crt and DIR/NAME.key and returns the two paths.
func (k keyPair) write(dir, name string) (certPath, keyPath string, err error) {
	certPath = filepath.Join(dir, name+".crt")
	keyPath = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, k.certPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write certificate %s: %w", certPath, err)
	}
	if err := os.WriteFile(keyPath, k.keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write key %s: %w", keyPath, err)
	}
	return certPath, keyPath, nil
}

// serviceAccountKeys writes the key pair kube-apiserver signs service
// account tokens with (private, PKCS#8) and verifies them with (public, PKIX).
func serviceAccountKeys(dir string) (privatePath, publicPath string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate service account key: %w", err)
	}
	keyPEM, err := privateKeyPEM(key)
	if err != nil {
		return "", "", fmt.Errorf("encode service account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", "", fmt.Errorf("encode service account public key: %w", err)
	}
	privatePath = filepath.Join(dir, "sa.key")
	publicPath = filepath.Join(dir, "sa.pub")
	if err := os.WriteFile(privatePath, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", privatePath, err)
	}
	if err := os.WriteFile(publicPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		return "", "", fmt.Errorf("write %s: %w", publicPath, err)
	}
	return privatePath, publicPath, nil
}

// writeCA stores a CA certificate (without its key) as DIR/NAME.crt.
func writeCA(dir, name string, a *authority) (string, error) {
	path := filepath.Join(dir, name+".crt")
	if err := os.WriteFile(path, a.certPEM, 0o600); err != nil {
		return "", fmt.Errorf("write CA certificate %s: %w", path, err)
	}
	return path, nil
}

// writeKubeconfig writes a self-contained kubeconfig (certificates embedded)
// for one user of one server.
func writeKubeconfig(path, clusterName, server string, caPEM []byte, user keyPair) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[clusterName] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: user.certPEM, ClientKeyData: user.keyPEM}
	cfg.Contexts[clusterName] = &clientcmdapi.Context{Cluster: clusterName, AuthInfo: "admin"}
	cfg.CurrentContext = clusterName
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

func privateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("draw certificate serial: %w", err)
	}
	return serial, nil
}

// loopbackIPs is what every serving certificate is valid for (a function,
// not a variable, so that no caller can change it for the others).
func loopbackIPs() []net.IP { return []net.IP{net.IPv4(127, 0, 0, 1)} }

// certPool holds the certificates of caPEM.
func certPool(caPEM []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("CA bundle holds no PEM certificate")
	}
	return pool, nil
}

// ServingCert writes to dir, as tls.crt and tls.key, a serving certificate
// for 127.0.0.1 issued by a new authority, and returns their paths and the
// authority's PEM: what a webhook served by a test presents, and the
// caBundle with which the API server trusts it.
func ServingCert(dir, commonName string) (certFile, keyFile string, caPEM []byte, err error) {
	ca, err := newAuthority(commonName + "-ca")
	if err != nil {
		return "", "", nil, err
	}
	pair, err := ca.issue(certRequest{commonName: commonName, ips: loopbackIPs(), server: true})
	if err != nil {
		return "", "", nil, err
	}
	if certFile, keyFile, err = pair.write(dir, "tls"); err != nil {
		return "", "", nil, err
	}
	return certFile, keyFile, ca.certPEM, nil
}
