#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok) from the Go module proxy for `make bench`,
# which compares vk-flightctl's virtual node with a KWOK fake node.
#
# Usage: hack/build-kwok.sh
#
# The binary lands in a per-user cache ($VK_KWOK_CACHE, default
# ~/.cache/vk-flightctl/kwok/<version>) and is linked into bin/kwok, with
# kwok's upstream stage definitions in bin/kwok-stages.yaml.
# `go install sigs.k8s.io/kwok/cmd/kwok@<version>` is refused when kwok's
# go.mod has replace directives, so a throwaway main module requires it
# instead (as hack/build-k8s-binaries.sh does for etcd).
set -euo pipefail

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VK_KWOK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vk-flightctl/kwok}/${KWOK_VERSION}"
WORK="${CACHE}/.work"
OUT="${ROOT}/bin"

mkdir -p "$CACHE" "$WORK" "$OUT"
log() { printf '[build-kwok %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ -x "$CACHE/kwok" ] && [ "$(cat "$CACHE/.kwok.version" 2>/dev/null)" = "$KWOK_VERSION" ]; then
  log "kwok $KWOK_VERSION cached"
else
  t0=$SECONDS
  log "building kwok $KWOK_VERSION"
  if ! GOBIN="$WORK/gobin" CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" 2>"$WORK/install.err"; then
    log "go install refused ($(head -c 200 "$WORK/install.err" | tr '\n' ' ')); using a wrapper module"
    mod="$WORK/mod"
    rm -rf "$mod"; mkdir -p "$mod"
    cat >"$mod/go.mod" <<MOD
module vkflightctl.local/kwokbuild

go 1.25
MOD
    cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
GO
    (cd "$mod" && go get "sigs.k8s.io/kwok@${KWOK_VERSION}" && go mod tidy -e >/dev/null 2>&1 || true)
    (cd "$mod" && go get "sigs.k8s.io/kwok@${KWOK_VERSION}")
    (cd "$mod" && CGO_ENABLED=0 go build -trimpath -o "$WORK/gobin/kwok" sigs.k8s.io/kwok/cmd/kwok)
  fi
  mv "$WORK/gobin/kwok" "$CACHE/kwok"
  echo "$KWOK_VERSION" >"$CACHE/.kwok.version"
  log "kwok built in $((SECONDS - t0))s"
fi
ln -sf "$CACHE/kwok" "$OUT/kwok"

# kwok refuses to start without Stages: collect the upstream "fast" node
# and pod stages plus the node heartbeat with lease (so the node lifecycle
# controller keeps the fake node Ready) into one config file.
if [ ! -s "$CACHE/kwok-stages.yaml" ] || [ "$(cat "$CACHE/.stages.version" 2>/dev/null)" != "$KWOK_VERSION" ]; then
  src="$(cd "$WORK" && go mod download -json "sigs.k8s.io/kwok@${KWOK_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  : >"$CACHE/kwok-stages.yaml.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$src/kustomize/stage/$f"; } >>"$CACHE/kwok-stages.yaml.tmp"
  done
  mv "$CACHE/kwok-stages.yaml.tmp" "$CACHE/kwok-stages.yaml"
  echo "$KWOK_VERSION" >"$CACHE/.stages.version"
fi
ln -sf "$CACHE/kwok-stages.yaml" "$OUT/kwok-stages.yaml"
echo "$OUT/kwok"
