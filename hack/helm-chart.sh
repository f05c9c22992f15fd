#!/usr/bin/env bash
# Regenerates dist/chart (and the values table in docs/helm.md) from the kustomize output of config/default and
# config/prometheus (hack/lib/helmchart/main.go does the templating), so
# the chart follows the kustomize bases. `make helm-chart` runs it;
# hack/verify-generated.sh runs it and fails when the result differs from
# what is committed.
#
# Environment: KUSTOMIZE (the kustomize binary), VERSION (chart version =
# appVersion; the Makefile's VERSION).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${KUSTOMIZE:?set KUSTOMIZE to the kustomize binary (make helm-chart does)}"
: "${VERSION:?set VERSION to the chart and app version (make helm-chart does)}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$KUSTOMIZE" build config/default >"$tmp/default.yaml"
"$KUSTOMIZE" build config/prometheus >"$tmp/prometheus.yaml"
go run hack/lib/helmchart/main.go -version "$VERSION" -out dist/chart \
  -sample config/samples/vk_v1alpha1_fleetbinding.yaml -docs docs/helm.md \
  -monitoring "$tmp/prometheus.yaml" "$tmp/default.yaml"
