#!/usr/bin/env bash
# Builds the Kubernetes binaries that tests and the local control plane need
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)
# from the Go module proxy, because prebuilt downloads (setup-envtest, kind)
# are not reachable here.
#
# Usage: hack/build-k8s-binaries.sh [component...]
#   components: etcd kube-apiserver kube-controller-manager kube-scheduler kubectl
#   (default: etcd kube-apiserver, which is what envtest needs)
#
# Binaries land in a per-user cache ($VK_K8S_CACHE, default
# ~/.cache/vk-flightctl/k8s/<version>) so that a fresh clone on the same
# machine does not rebuild them, and are linked into bin/k8s/<version>/.
# A binary is rebuilt only when it is missing or reports the wrong version.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${VK_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vk-flightctl/k8s}/${K8S_VERSION}"
OUT="${ROOT}/bin/k8s/${K8S_VERSION}"
WORK="${CACHE}/.work"

components=("$@")
[ ${#components[@]} -eq 0 ] && components=(etcd kube-apiserver)

mkdir -p "$CACHE" "$OUT" "$WORK"
log() { printf '[build-k8s %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# stamp files record which version a cached binary was built from, so a
# version bump rebuilds instead of silently reusing an old binary.
is_current() { # name version
  [ -x "$CACHE/$1" ] && [ "$(cat "$CACHE/.$1.version" 2>/dev/null)" = "$2" ]
}

link_out() { ln -sf "$CACHE/$1" "$OUT/$1"; }

build_etcd() {
  if is_current etcd "$ETCD_VERSION"; then log "etcd $ETCD_VERSION cached"; return; fi
  local mod="$WORK/etcd"
  mkdir -p "$mod"
  # etcd's server module carries replace directives, so `go install pkg@ver`
  # refuses it; a throwaway main module that requires it builds fine.
  cat >"$mod/go.mod" <<MOD
module vkflightctl.local/etcdbuild

go 1.25
MOD
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  log "resolving etcd $ETCD_VERSION"
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >/dev/null 2>&1 && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}")
  log "building etcd $ETCD_VERSION (about 1.5 min cold)"
  local t0=$SECONDS
  (cd "$mod" && CGO_ENABLED=0 go build -trimpath -o "$CACHE/etcd.tmp" go.etcd.io/etcd/server/v3)
  mv "$CACHE/etcd.tmp" "$CACHE/etcd"
  echo "$ETCD_VERSION" >"$CACHE/.etcd.version"
  log "etcd built in $((SECONDS - t0))s"
}

prepare_k8s_module() {
  local mod="$WORK/kubernetes"
  [ -f "$mod/.ready-$K8S_VERSION" ] && return
  mkdir -p "$mod"
  log "resolving k8s.io/kubernetes $K8S_VERSION"
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local staging_ver="v0${K8S_VERSION#v1}"
  {
    echo "module vkflightctl.local/k8sbuild"
    echo
    echo "go 1.25"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    # k8s.io/kubernetes pins its staging modules to v0.0.0 with local
    # replaces; point each one at its published release instead.
    grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$gomod" |
      awk -v v="$staging_ver" '{print "replace " $1 " => " $1 " " v}'
  } >"$mod/go.mod"
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$mod" && go mod tidy)
  touch "$mod/.ready-$K8S_VERSION"
}

build_k8s() { # component
  local name="$1"
  if is_current "$name" "$K8S_VERSION"; then log "$name $K8S_VERSION cached"; return; fi
  prepare_k8s_module
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
  log "building $name $K8S_VERSION"
  local t0=$SECONDS
  (cd "$WORK/kubernetes" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$CACHE/$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv "$CACHE/$name.tmp" "$CACHE/$name"
  echo "$K8S_VERSION" >"$CACHE/.$name.version"
  log "$name built in $((SECONDS - t0))s"
}

start=$SECONDS
for c in "${components[@]}"; do
  case "$c" in
    etcd) build_etcd ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) build_k8s "$c" ;;
    *) echo "unknown component: $c" >&2; exit 2 ;;
  esac
  link_out "$c"
done
log "done in $((SECONDS - start))s: ${components[*]} in $OUT"
echo "$OUT"
