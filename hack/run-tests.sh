#!/usr/bin/env bash
# Runs every test suite. `make test` calls it after building the Kubernetes
# binaries, so KUBEBUILDER_ASSETS points at a real etcd and kube-apiserver.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KUBEBUILDER_ASSETS:?set KUBEBUILDER_ASSETS (make test does) to the directory with etcd and kube-apiserver}"
export KUBEBUILDER_ASSETS

start=$SECONDS
# Pure packages (no API server) run with the race detector: placement and
# the simulator are concurrent by design.
pure=$(go list ./... | grep -v -e /controllers -e /test/e2e)
echo "== unit and contract tests (race detector on)"
go test -count=1 -race -timeout 20m $pure

echo "== envtest suites (real kube-apiserver and etcd from $KUBEBUILDER_ASSETS)"
go test -count=1 -timeout 30m ./controllers/... -ginkgo.no-color

echo "== all suites passed in $((SECONDS - start))s"
