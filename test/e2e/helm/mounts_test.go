package helm

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

// processCommand turns the chart's Deployment into the manager's command
// line here: the addresses that would bind the pod's network are left to
// the stack (free ports on 127.0.0.1), and a path under a Secret volume's
// mount is moved to a directory under mountRoot, which writeSecretMounts
// fills from the Secret as a kubelet would. It returns the arguments and
// the directory of each Secret.
func processCommand(dep *appsv1.Deployment, mountRoot string) ([]string, map[string]string, error) {
	pod := dep.Spec.Template.Spec
	secretOf := map[string]string{} // volume name -> Secret
	for _, v := range pod.Volumes {
		if v.Secret == nil {
			return nil, nil, fmt.Errorf("volume %s is not a Secret: the suite cannot stand in for it", v.Name)
		}
		secretOf[v.Name] = v.Secret.SecretName
	}
	mounts := map[string]string{}  // Secret -> local directory
	pathMap := map[string]string{} // mount path -> local directory
	for _, m := range pod.Containers[0].VolumeMounts {
		secret, ok := secretOf[m.Name]
		if !ok {
			return nil, nil, fmt.Errorf("mount %s names no volume", m.Name)
		}
		dir := filepath.Join(mountRoot, m.Name)
		mounts[secret] = dir
		pathMap[m.MountPath] = dir
	}
	var args []string
	for _, a := range pod.Containers[0].Args {
		flag, val, _ := strings.Cut(a, "=")
		switch flag {
		case "--metrics-bind-address", "--health-probe-bind-address", "--kubelet-listen-address":
			continue
		}
		for mp, dir := range pathMap {
			if strings.HasPrefix(val, mp+"/") {
				a = flag + "=" + dir + strings.TrimPrefix(val, mp)
			}
		}
		if strings.Contains(a, "$(") {
			return nil, nil, fmt.Errorf("argument %q needs the pod's environment", a)
		}
		args = append(args, a)
	}
	return args, mounts, nil
}

// writeSecretMounts writes every key of each mounted Secret, read from the
// API server, into its directory.
func writeSecretMounts(ctx context.Context) error {
	for secret, dir := range secretMounts {
		out, err := kubectl(ctx, "get", "secret", secret, "-n", namespace, "-o", "jsonpath={.data}")
		if err != nil {
			return err
		}
		var data map[string]string
		if err := json.Unmarshal([]byte(out), &data); err != nil {
			return fmt.Errorf("Secret %s: %w", secret, err)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		for k, v := range data {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, k), b, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// selfSignedCert is a serving certificate for 127.0.0.1, as a user would
// put into the kubelet TLS Secret.
func selfSignedCert() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "vk-flightctl e2e kubelet API"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

func certDER(certPEM []byte) ([]byte, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil {
		return nil, errors.New("no PEM certificate")
	}
	return b.Bytes, nil
}

// servedCertificate is the leaf certificate a TLS server presents. It is
// only read, not trusted: the comparison is the check.
func servedCertificate(ctx context.Context, addr string) ([]byte, error) {
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // reading the certificate, not trusting it
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return certs[0].Raw, nil
}
