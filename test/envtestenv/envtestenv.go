// Package envtestenv starts the API server the envtest suites share: a real
// kube-apiserver and etcd (built by hack/build-k8s-binaries.sh, found
// through KUBEBUILDER_ASSETS) with the FleetBinding CRD installed, and the
// clients specs read it with. One helper, so every suite starts the same
// environment.
package envtestenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/vk-flightctl/vk-flightctl/internal/manager"
)

// Env is a running API server and clients that bypass any cache, so specs
// see what the API server holds.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client reads and writes typed objects, FleetBindings included.
	Client client.Client
	// Kube is a client-go clientset on the same server.
	Kube kubernetes.Interface
	// Scheme is the manager's scheme.
	Scheme *runtime.Scheme

	env *envtest.Environment
}

// Start starts the API server with the CRDs of config/crd/bases, found from
// the repository root. It fails with the command to run when the binaries
// are missing.
func Start() (*Env, error) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS must point at etcd and kube-apiserver: run through `make test`, which builds them with hack/build-k8s-binaries.sh")
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	e := &Env{Scheme: manager.Scheme(), env: &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}}
	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	if e.Kube, err = kubernetes.NewForConfig(e.Config); err != nil {
		return nil, errors.Join(err, e.Stop())
	}
	return e, nil
}

// Stop stops the API server and etcd; safe on a nil Env.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above %s: run from the repository", dir)
		}
		dir = parent
	}
}
