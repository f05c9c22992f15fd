#!/usr/bin/env bash
# Builds helm (helm.sh/helm/v3) from the Go module proxy for `helm lint`,
# `helm template` (hack/helm-lint.sh) and the Helm e2e spec.
#
# Usage: hack/build-helm.sh
#
# The binary lands in a per-user cache ($VK_HELM_CACHE, default
# ~/.cache/vk-flightctl/helm/<version>) and is linked into bin/helm, so
# worktrees and a clean bin/ do not rebuild it (about 2 minutes cold on two
# free cores, 5 on a busy machine). HELM_VERSION picks the version.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VK_HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vk-flightctl/helm}/${HELM_VERSION}"
OUT="${ROOT}/bin"

log() { printf '[build-helm %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

mkdir -p "$CACHE" "$OUT"
if [ -x "$CACHE/helm" ] && [ "$(cat "$CACHE/.version" 2>/dev/null)" = "$HELM_VERSION" ]; then
  log "helm $HELM_VERSION cached"
else
  t0=$SECONDS
  work="$CACHE/.work"
  rm -rf "$work"
  mkdir -p "$work"
  log "building helm $HELM_VERSION (go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION)"
  # go install leaves helm's version variables at their source defaults
  # ("v3.22" without the patch); helm's own release build sets them so.
  GOBIN="$work" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION} -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
  mv "$work/helm" "$CACHE/helm"
  rm -rf "$work"
  echo "$HELM_VERSION" >"$CACHE/.version"
  log "helm built in $((SECONDS - t0))s"
fi
ln -sf "$CACHE/helm" "$OUT/helm"
echo "$OUT/helm"
