#!/usr/bin/env bash
# make demo-down: stop what `make demo` started: the manager and the
# Flightctl simulator or the fake devices (pid files in .local/demo), then
# the local control plane (hack/local-cluster.sh down) and, after
# `make demo FLIGHTCTL=real`, the real Flightctl (hack/real-flightctl.sh
# down), and remove .local/demo.
#
# Usage: hack/demo-down.sh [--quiet]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="$ROOT/.local/demo"
QUIET=""
[ "${1:-}" = "--quiet" ] && QUIET=1

say() { [ -n "$QUIET" ] || printf '[demo-down] %s\n' "$*" >&2; }

cmdline() { # pid -> command line, empty if gone
  if [ -r "/proc/$1/cmdline" ]; then
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
  else
    ps -p "$1" -o command= 2>/dev/null || true
  fi
}

# stop NAME BINARY: SIGTERM the pid in .local/demo/NAME.pid if that process
# runs bin/BINARY (a stale pid may belong to someone else now), SIGKILL
# after 15 s.
stop() {
  local name="$1" bin="$ROOT/bin/$2" pidfile="$STATE/$1.pid" pid i
  [ -s "$pidfile" ] || return 0
  pid="$(tr -dc '0-9' <"$pidfile")"
  case "$(cmdline "$pid")" in
    "$bin"*) ;;
    *) rm -f "$pidfile"; return 0 ;;
  esac
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  say "stopped $name (pid $pid)"
  rm -f "$pidfile"
}

stop manager vk-flightctl-provider
stop flightctl-sim flightctl-sim
if [ -n "$QUIET" ]; then
  # Quiet unless it fails.
  if ! out="$("$ROOT/hack/local-cluster.sh" down 2>&1)"; then
    printf '%s\n' "$out" >&2
    exit 1
  fi
else
  "$ROOT/hack/local-cluster.sh" down
fi
# make demo FLIGHTCTL=real started the real Flightctl; stop it too.
if [ -f "$STATE/real-flightctl" ]; then
  if [ -n "$QUIET" ]; then
    if ! out="$("$ROOT/hack/real-flightctl.sh" down 2>&1)"; then printf '%s\n' "$out" >&2; exit 1; fi
  else
    "$ROOT/hack/real-flightctl.sh" down
  fi
fi
rm -rf "$STATE"
say "demo stopped"
