//go:build ignore

// Command localcluster is the helper behind hack/local-cluster.sh. It needs
// nothing but the Go standard library, so a fresh machine with Go can bring
// up the local control plane without openssl or python.
//
// It is excluded from the module's packages (build tag "ignore"), so
// `go build ./...`, `go test ./...`, linters and coverage do not see it;
// local-cluster.sh builds it by file name:
//
//	go build -o HELPER hack/lib/localcluster/main.go
//
// Subcommands:
//
//	pki DIR                 write a CA, serving and client certificates and the
//	                        service-account key pair into DIR
//	ports N                 print N distinct free TCP ports on 127.0.0.1
//	kubeconfig OUT SERVER CA CERT KEY USER
//	                        write a kubeconfig with the files embedded
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "pki":
		if len(os.Args) != 3 {
			usage()
		}
		err = writePKI(os.Args[2])
	case "ports":
		if len(os.Args) != 3 {
			usage()
		}
		var n int
		n, err = strconv.Atoi(os.Args[2])
		if err == nil {
			err = printFreePorts(n)
		}
	case "kubeconfig":
		if len(os.Args) != 8 {
			usage()
		}
		a := os.Args[2:]
		err = writeKubeconfig(a[0], a[1], a[2], a[3], a[4], a[5])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "localcluster %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: localcluster pki DIR | ports N | kubeconfig OUT SERVER CA CERT KEY USER")
	os.Exit(2)
}

// ---------------------------------------------------------------- ports

// printFreePorts asks the kernel for free ports by listening on port 0. All
// listeners stay open until every port is chosen, so the ports are distinct.
// Another process can still take a port before the component binds it;
// local-cluster.sh detects "address already in use" and retries.
func printFreePorts(n int) error {
	if n < 1 || n > 64 {
		return fmt.Errorf("port count %d out of range", n)
	}
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	ports := make([]string, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, " "))
	return nil
}

// ---------------------------------------------------------------- PKI

type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

const validity = 365 * 24 * time.Hour

func newKey() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
}

func newCA(cn string) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour), // tolerate small clock skew
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

type leafSpec struct {
	cn     string
	orgs   []string
	server bool
	client bool
	dns    []string
	ips    []net.IP
}

func (ca *keyPair) issue(s leafSpec) (*keyPair, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	var usages []x509.ExtKeyUsage
	if s.server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if s.client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: s.cn, Organization: s.orgs},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           usages,
		BasicConstraintsValid: true,
		DNSNames:              s.dns,
		IPAddresses:           s.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k crypto.Signer) ([]byte, error) {
	switch k := k.(type) {
	case *ecdsa.PrivateKey:
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
	case *rsa.PrivateKey:
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}), nil
	default:
		return nil, fmt.Errorf("unsupported key type %T", k)
	}
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func writePair(dir, name string, kp *keyPair) error {
	k, err := keyPEM(kp.key)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, name+".key"), k, 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, name+".crt"), certPEM(kp.cert), 0o644)
}

func writePKI(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ca, err := newCA("vk-flightctl-local-ca")
	if err != nil {
		return err
	}
	if err := writePair(dir, "ca", ca); err != nil {
		return err
	}

	loopback := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}
	leaves := map[string]leafSpec{
		// 10.96.0.1 is the ClusterIP of the kubernetes Service for
		// --service-cluster-ip-range=10.96.0.0/24.
		"apiserver": {cn: "kube-apiserver", server: true,
			dns: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
				"kubernetes.default.svc.cluster.local"},
			ips: append([]net.IP{net.ParseIP("10.96.0.1")}, loopback...)},
		"controller-manager-serving": {cn: "kube-controller-manager", server: true,
			dns: []string{"localhost"}, ips: loopback},
		"scheduler-serving": {cn: "kube-scheduler", server: true,
			dns: []string{"localhost"}, ips: loopback},
		"admin":              {cn: "local-cluster-admin", orgs: []string{"system:masters"}, client: true},
		"controller-manager": {cn: "system:kube-controller-manager", client: true},
		"scheduler":          {cn: "system:kube-scheduler", client: true},
		// the apiserver's client certificate towards kubelets (virtual
		// kubelets serve logs/exec); system:masters keeps it simple.
		"apiserver-kubelet-client": {cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}, client: true},
	}
	for name, spec := range leaves {
		kp, err := ca.issue(spec)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := writePair(dir, name, kp); err != nil {
			return err
		}
	}

	// Service-account token signing key: RSA so tokens are RS256, which
	// every client library accepts.
	sa, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	k, err := keyPEM(sa)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "sa.key"), k, 0o600); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// ---------------------------------------------------------------- kubeconfig

func writeKubeconfig(out, server, caFile, certFile, keyFile, user string) error {
	b64 := func(path string) (string, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", err
		}
		return base64.StdEncoding.EncodeToString(data), nil
	}
	ca, err := b64(caFile)
	if err != nil {
		return err
	}
	cert, err := b64(certFile)
	if err != nil {
		return err
	}
	key, err := b64(keyFile)
	if err != nil {
		return err
	}
	const name = "vk-flightctl-local"
	cfg := fmt.Sprintf(`# Generated by hack/local-cluster.sh; removed by 'hack/local-cluster.sh down'.
apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: %[4]s
  user:
    client-certificate-data: %[5]s
    client-key-data: %[6]s
contexts:
- name: %[1]s
  context:
    cluster: %[1]s
    user: %[4]s
    namespace: default
current-context: %[1]s
preferences: {}
`, name, server, ca, user, cert, key)
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return writeFile(out, []byte(cfg), 0o600)
}
