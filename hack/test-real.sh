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
#   REAL_SCENARIO5=1   also run quickstart scenario 5 (disconnect), which
#                      waits for the server's own disconnect detection
#                      (5 min + a 2 min check, twice: 10-15 min more)
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

t0=$SECONDS
passed=0
if [ -n "${TEST_REAL_SKIP_CONTRACT:-}" ]; then
  echo "== contract suite LEFT OUT (TEST_REAL_SKIP_CONTRACT=$TEST_REAL_SKIP_CONTRACT): this is not a full test-real run"
else
  echo "== contract suite against flightctl-api $version at $FLIGHTCTL_URL"
  out="$(mktemp)"
  set +e
  FLIGHTCTL_CONTRACT_URL="$FLIGHTCTL_URL" FLIGHTCTL_CONTRACT_TOKEN="$FLIGHTCTL_TOKEN" FLIGHTCTL_CONTRACT_CA="$FLIGHTCTL_CA" \
    FLIGHTCTL_CONTRACT_AGENT_ENDPOINT="$FLIGHTCTL_AGENT_ENDPOINT" \
    go test -count=1 -timeout 15m -v -run '^TestRealFlightctl$' ./test/contract/ 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  set -e
  if grep -q -- '--- SKIP: TestRealFlightctl' "$out"; then echo "the contract suite skipped against the real server" >&2; rc=1; fi
  passed=$(grep -c -- '--- PASS' "$out" || true)
  failed=$(grep -c -- '--- FAIL' "$out" || true)
  rm -f "$out"
  [ "$rc" = 0 ] || { echo "contract suite against the real server failed ($passed passed, $failed failed)" >&2; exit "$rc"; }
fi
contract_took=$((SECONDS - t0))

echo "== quickstart scenarios (test/e2e) against flightctl-api $version with fake devices"
t0=$SECONDS
focus=()
if [ -n "${TEST_REAL_FOCUS:-}" ]; then
  echo "== only the e2e specs matching TEST_REAL_FOCUS='$TEST_REAL_FOCUS': this is not a full test-real run"
  focus=(-ginkgo.focus "$TEST_REAL_FOCUS")
fi
E2E_REAL_SCENARIO5="${REAL_SCENARIO5:-}" go test -count=1 -timeout 45m -v ./test/e2e/... -ginkgo.no-color -ginkgo.v "${focus[@]}"
e2e_took=$((SECONDS - t0))

echo "== test-real passed in $((SECONDS - start))s (service up ${up_took}s, contract ${contract_took}s: $passed passed, e2e ${e2e_took}s)"
