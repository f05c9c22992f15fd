#!/usr/bin/env bash
# Regenerates the CRD, RBAC and DeepCopy code, the quickstart files and the
# Helm chart, and fails when the result differs from what was there:
# generated files must be committed fresh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

generated=(config/crd/bases config/rbac/role.yaml api/v1alpha1/zz_generated.deepcopy.go config/rbac.yaml config/deployment.yaml dist/chart docs/helm.md)
snap="$(mktemp -d)"
trap 'rm -rf "$snap"' EXIT
for p in "${generated[@]}"; do
  mkdir -p "$snap/$(dirname "$p")"
  if [ -e "$p" ]; then cp -r "$p" "$snap/$p"; fi
done
# helm-chart last: the chart is generated from the CRD and RBAC above.
make -s manifests generate quickstart-manifests helm-chart >/dev/null
stale=0
for p in "${generated[@]}"; do
  if ! diff -r -u "$snap/$p" "$p"; then
    stale=1
  fi
done
if [ "$stale" = 1 ]; then
  echo "generated files were stale (shown above); they are now regenerated: review and commit them" >&2
  exit 1
fi
echo "generated files are up to date"
