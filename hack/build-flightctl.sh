#!/usr/bin/env bash
# Builds the Flightctl service and agent of one release from the Go module
# proxy: flightctl-api, flightctl-worker, flightctl-periodic,
# flightctl-db-migrate, flightctl-agent and the flightctl CLI.
#
# Usage: hack/build-flightctl.sh            (prints the cache directory)
#
# github.com/flightctl/flightctl carries replace directives in its go.mod, so
# `go install …@version` refuses it; a throwaway wrapper module that requires
# it and repeats those replace lines builds it (the same trick as
# hack/build-k8s-binaries.sh). Binaries land in a per-user cache
# ($VK_FLIGHTCTL_CACHE, default ~/.cache/vk-flightctl/flightctl/<version>)
# with a version stamp each, so a fresh clone on the same machine reuses them
# and a version bump rebuilds instead of silently reusing an old binary.
set -euo pipefail

FLIGHTCTL_VERSION="${FLIGHTCTL_VERSION:-v1.2.0}"
MODULE=github.com/flightctl/flightctl
CACHE="${VK_FLIGHTCTL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vk-flightctl/flightctl}/${FLIGHTCTL_VERSION}"
WORK="${CACHE}/.work"
COMMANDS=(flightctl-api flightctl-worker flightctl-periodic flightctl-db-migrate flightctl-agent flightctl)

log() { printf '[build-flightctl %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

is_current() { # name
  [ -x "$CACHE/$1" ] && [ "$(cat "$CACHE/.$1.version" 2>/dev/null)" = "$FLIGHTCTL_VERSION" ]
}

missing=()
for c in "${COMMANDS[@]}"; do is_current "$c" || missing+=("$c"); done
if [ ${#missing[@]} -eq 0 ]; then
  log "all ${#COMMANDS[@]} binaries of flightctl $FLIGHTCTL_VERSION cached in $CACHE"
  echo "$CACHE"
  exit 0
fi

mkdir -p "$CACHE" "$WORK"
export GOTOOLCHAIN=local CGO_ENABLED=0

prepare_module() {
  [ -f "$WORK/.ready-$FLIGHTCTL_VERSION" ] && return
  log "resolving $MODULE $FLIGHTCTL_VERSION from the module proxy"
  local gomod
  gomod="$(go mod download -json "${MODULE}@${FLIGHTCTL_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  [ -f "$gomod" ] || { log "could not download $MODULE@$FLIGHTCTL_VERSION"; exit 1; }
  {
    echo "module vkflightctl.local/flightctlbuild"
    echo
    echo "go 1.25"
    echo
    echo "require ${MODULE} ${FLIGHTCTL_VERSION}"
    echo
    # Replace directives only apply in the main module: repeat the
    # upstream ones (both the block and the single-line form).
    awk '/^replace \($/ {inblock=1; next}
         inblock && /^\)/ {inblock=0; next}
         inblock && NF {print "replace " $0; next}
         /^replace [^(]/ {print}' "$gomod"
  } >"$WORK/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "${COMMANDS[@]}"; do echo "	_ \"${MODULE}/cmd/$c\""; done
    echo ")"
  } >"$WORK/tools.go"
  log "go mod tidy (downloads Flightctl's dependencies on a cold cache)"
  (cd "$WORK" && go mod tidy)
  touch "$WORK/.ready-$FLIGHTCTL_VERSION"
}

prepare_module
pkg="${MODULE}/pkg/version"
ver="${FLIGHTCTL_VERSION#v}"
ldflags="-s -w -X ${pkg}.versionFromGit=${FLIGHTCTL_VERSION} -X ${pkg}.gitTreeState=clean"
ldflags+=" -X ${pkg}.majorFromGit=${ver%%.*} -X ${pkg}.minorFromGit=$(echo "$ver" | cut -d. -f2) -X ${pkg}.patchFromGit=${ver##*.}"
start=$SECONDS
i=0
for c in "${missing[@]}"; do
  i=$((i + 1))
  log "[$i/${#missing[@]}] building $c $FLIGHTCTL_VERSION (flightctl-api takes ~2 min cold on 2 cores)"
  t0=$SECONDS
  (cd "$WORK" && go build -trimpath -ldflags "$ldflags" -o "$CACHE/$c.tmp" "${MODULE}/cmd/$c")
  mv "$CACHE/$c.tmp" "$CACHE/$c"
  echo "$FLIGHTCTL_VERSION" >"$CACHE/.$c.version"
  log "$c built in $((SECONDS - t0))s"
done
log "done in $((SECONDS - start))s: ${missing[*]} in $CACHE"
echo "$CACHE"
