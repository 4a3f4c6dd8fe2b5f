package app

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// keyPair serves a certificate read from files, and reads them again when
// either changes: cert-manager and the kubelet replace a Secret's files
// in place, and a webhook that kept an expired certificate would, under
// failurePolicy Ignore, silently stop giving pods their GPUs.
type keyPair struct {
	certFile, keyFile string
	logger            klog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp string // the files' sizes and modification times when read
}

// newKeyPair reads the pair once, so that a bad pair stops the start.
func newKeyPair(certFile, keyFile string, logger klog.Logger) (*keyPair, error) {
	k := &keyPair{certFile: certFile, keyFile: keyFile, logger: logger}
	if _, err := k.current(); err != nil {
		return nil, err
	}
	return k, nil
}

// current returns the pair, reading it again if the files changed. A pair
// that no longer loads (a half-written renewal) keeps the previous one.
func (k *keyPair) current() (*tls.Certificate, error) {
	stamp, err := k.fileStamp()
	k.mu.Lock()
	defer k.mu.Unlock()
	if err == nil && stamp == k.stamp && k.cert != nil {
		return k.cert, nil
	}
	if err == nil {
		var cert tls.Certificate
		if cert, err = tls.LoadX509KeyPair(k.certFile, k.keyFile); err == nil {
			if k.cert != nil {
				k.logger.Info("Reloaded the serving certificate", "cert", k.certFile)
			}
			k.cert, k.stamp = &cert, stamp
			return k.cert, nil
		}
	}
	err = fmt.Errorf("load serving certificate %s and key %s: %w", k.certFile, k.keyFile, err)
	if k.cert == nil {
		return nil, err
	}
	k.logger.Error(err, "Keeping the previous serving certificate")
	return k.cert, nil
}

func (k *keyPair) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{k.certFile, k.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d@%s;", fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
	}
	return stamp, nil
}

// getCertificate is tls.Config.GetCertificate.
func (k *keyPair) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.current()
}
