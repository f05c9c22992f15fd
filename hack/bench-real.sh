#!/usr/bin/env bash
# make bench FLIGHTCTL=real: the bench's start workload and steady windows
# against a real Flightctl v1.2.0 (hack/real-flightctl.sh) with fake devices
# that enrol over its mTLS agent endpoint (issue 17). See bench/README.md.
#
# Only one real Flightctl may run on the machine, and benchmarks must not
# share it: this takes /tmp/vk-real-flightctl.lock, then /tmp/vk-bench.lock
# (waiting for whoever holds them), brings the service up if it is not
# running, and stops it again on exit (also on failure) when it started it.
#
#   REAL_FLIGHTCTL_KEEP=1   leave the service running afterwards (a rerun
#                           then resumes the enrolled devices: faster)
#   BENCH_QUICK=1           20 devices, 60 s windows
#   VKBENCH_ARGS="..."      extra vkbench flags (-devices, -real-window, ...)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -z "${VK_BENCH_REAL_LOCKED:-}" ]; then
  echo "== waiting for /tmp/vk-real-flightctl.lock and /tmp/vk-bench.lock"
  exec env VK_BENCH_REAL_LOCKED=1 flock /tmp/vk-real-flightctl.lock flock /tmp/vk-bench.lock "$0" "$@"
fi

started_here=0
if ! hack/real-flightctl.sh status 2>/dev/null | grep -q '^flightctl-api: running'; then started_here=1; fi
cleanup() {
  rc=$?
  if [ "$started_here" = 1 ] && [ -z "${REAL_FLIGHTCTL_KEEP:-}" ]; then
    hack/real-flightctl.sh down || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

hack/real-flightctl.sh up
eval "$(hack/real-flightctl.sh env)"
# shellcheck disable=SC2086 # VKBENCH_ARGS is a list of flags
go run ./bench/cmd/vkbench -flightctl real ${VKBENCH_ARGS:-}
