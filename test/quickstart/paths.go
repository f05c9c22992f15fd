package quickstart

import (
	"fmt"
	"os"
	"path/filepath"
)

// RepoRoot is the directory with go.mod at or above the working directory
// (go test runs a test in its package directory; the programs under hack/
// and bench/ run from the repository).
func RepoRoot() (string, error) {
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

// K8sBinDir is where the Kubernetes binaries are for the suites that run a
// whole control plane: $K8S_BIN_DIR, else $KUBEBUILDER_ASSETS when it also
// holds kube-scheduler and kubectl (make sets it to bin/k8s/<version>), else
// <root>/bin/k8s/<K8sVersion>.
func K8sBinDir(root string) string {
	if d := os.Getenv("K8S_BIN_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		_, errSched := os.Stat(filepath.Join(d, "kube-scheduler"))
		_, errKubectl := os.Stat(filepath.Join(d, "kubectl"))
		if errSched == nil && errKubectl == nil {
			return d
		}
	}
	return filepath.Join(root, "bin", "k8s", K8sVersion)
}
