#!/usr/bin/env bash
# make test-real: the contract suite and the quickstart scenarios against a
# real Flightctl v1.2.0 (hack/real-flightctl.sh), with fake devices that
# enrol and report over its mTLS agent endpoint (flightctl-sim agent).
#
# It brings the service up (building it on first use, ~3-7 min cold, then
# cached per user) and, when it started it, stops it again on exit, also
# on failure. A service that cannot come up fails the run: nothing here
# skips silently.
#
# Quickstart scenario 5 waits once for the server's own disconnect
# detection (5 min + a 2 min check); the contract suite runs meanwhile, in
# parallel with the e2e suite (it only touches objects of its own run).
#
#   REAL_SKIP_SCENARIO5=1  leave scenario 5 out of a local run (printed and
#                      reported as skipped; never in CI)
#   REAL_FLIGHTCTL_KEEP=1  leave the service running afterwards
#   TEST_REAL_FOCUS=regex  run only the e2e specs matching regex (ginkgo
#                      focus), for a short local run; printed, never in CI
#   TEST_REAL_SKIP_CONTRACT=1  leave out the contract suite (printed)
#   KUBEBUILDER_ASSETS / K8S_BIN_DIR  as for the e2e suite
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
start=$SECONDS
want_version="${FLIGHTCTL_VERSION:-v1.2.0}"

started_here=0
if ! hack/real-flightctl.sh status 2>/dev/null | grep -q '^flightctl-api: running'; then started_here=1; fi
cleanup() {
  rc=$?
  if [ "$(type -t stop_contract)" = function ]; then stop_contract; fi
  if [ "$started_here" = 1 ] && [ -z "${REAL_FLIGHTCTL_KEEP:-}" ]; then
    hack/real-flightctl.sh down || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT

echo "== real Flightctl $want_version on 127.0.0.1 (hack/real-flightctl.sh up)"
hack/real-flightctl.sh up
eval "$(hack/real-flightctl.sh env)"
version="$(curl -sf --cacert "$FLIGHTCTL_CA" -H "Authorization: Bearer $FLIGHTCTL_TOKEN" "$FLIGHTCTL_URL/api/v1/version" |
  sed -n 's/.*"version" *: *"\([^"]*\)".*/\1/p')"
if [ "$version" != "$want_version" ]; then
  echo "flightctl-api at $FLIGHTCTL_URL reports version '${version}', want $want_version" >&2
  exit 1
fi
up_took=$((SECONDS - start))

# The contract suite runs in the background while the e2e suite (whose
# scenario 5 mostly waits for the server) runs in the foreground; its
# output is printed when both are done.
contract_out="$(mktemp)"
contract_pid=""
t0=$SECONDS
if [ -n "${TEST_REAL_SKIP_CONTRACT:-}" ]; then
  echo "== contract suite LEFT OUT (TEST_REAL_SKIP_CONTRACT=$TEST_REAL_SKIP_CONTRACT): this is not a full test-real run"
else
  echo "== contract suite against flightctl-api $version at $FLIGHTCTL_URL (in the background, output below when done)"
  (
    FLIGHTCTL_CONTRACT_URL="$FLIGHTCTL_URL" FLIGHTCTL_CONTRACT_TOKEN="$FLIGHTCTL_TOKEN" FLIGHTCTL_CONTRACT_CA="$FLIGHTCTL_CA" \
      FLIGHTCTL_CONTRACT_AGENT_ENDPOINT="$FLIGHTCTL_AGENT_ENDPOINT" \
      go test -count=1 -timeout 15m -v -run '^TestRealFlightctl$' ./test/contract/ >"$contract_out" 2>&1
    echo "rc=$? took=$((SECONDS - t0))" >>"$contract_out.done"
  ) &
  contract_pid=$!
fi
# On an early exit, the background suite is stopped too (its go test and
# test binary by their parent's pid, then the subshell).
stop_contract() {
  if [ -n "$contract_pid" ]; then
    pkill -TERM -P "$(pgrep -P "$contract_pid" | tr '\n' ',' | sed 's/,$//')" 2>/dev/null || true
    pkill -TERM -P "$contract_pid" 2>/dev/null || true
    kill "$contract_pid" 2>/dev/null || true
  fi
  rm -f "$contract_out" "$contract_out.done"
}

echo "== quickstart scenarios (test/e2e) against flightctl-api $version with fake devices"
t1=$SECONDS
focus=()
if [ -n "${TEST_REAL_FOCUS:-}" ]; then
  echo "== only the e2e specs matching TEST_REAL_FOCUS='$TEST_REAL_FOCUS': this is not a full test-real run"
  focus=(-ginkgo.focus "$TEST_REAL_FOCUS")
fi
if [ -n "${REAL_SKIP_SCENARIO5:-}" ]; then
  echo "== scenario 5 LEFT OUT (REAL_SKIP_SCENARIO5=$REAL_SKIP_SCENARIO5): this is not a full test-real run"
fi
set +e
E2E_SKIP_REAL_SCENARIO5="${REAL_SKIP_SCENARIO5:-}" go test -count=1 -timeout 45m -v ./test/e2e/... -ginkgo.no-color -ginkgo.v "${focus[@]}"
e2e_rc=$?
set -e
e2e_took=$((SECONDS - t1))

passed=0
contract_took=0
if [ -n "$contract_pid" ]; then
  echo "== contract suite output (ran alongside the e2e suite)"
  wait "$contract_pid" || true
  contract_pid=""
  cat "$contract_out"
  rc=1
  contract_took=0
  if [ -f "$contract_out.done" ]; then
    eval "$(sed -n 's/^rc=\([0-9]*\) took=\([0-9]*\)$/rc=\1 contract_took=\2/p' "$contract_out.done")"
  fi
  if grep -q -- '--- SKIP: TestRealFlightctl' "$contract_out"; then echo "the contract suite skipped against the real server" >&2; rc=1; fi
  passed=$(grep -c -- '--- PASS' "$contract_out" || true)
  failed=$(grep -c -- '--- FAIL' "$contract_out" || true)
  if [ "$rc" != 0 ]; then
    echo "contract suite against the real server failed ($passed passed, $failed failed)" >&2
    exit "$rc"
  fi
fi
[ "$e2e_rc" = 0 ] || { echo "the e2e suite against the real server failed" >&2; exit "$e2e_rc"; }

echo "== test-real passed in $((SECONDS - start))s (service up ${up_took}s; contract ${contract_took}s: $passed passed, alongside e2e ${e2e_took}s)"
