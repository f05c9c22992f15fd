#!/usr/bin/env bash
# Runs every test suite. `make test` calls it after building the Kubernetes
# binaries, so KUBEBUILDER_ASSETS points at a real etcd and kube-apiserver.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${KUBEBUILDER_ASSETS:?set KUBEBUILDER_ASSETS (make test does) to the directory with etcd and kube-apiserver}"
export KUBEBUILDER_ASSETS

start=$SECONDS
envtest_pkgs=(./controllers/... ./provider/node/...)
e2e_pkgs=()
if [ -d test/e2e ]; then e2e_pkgs=(./test/e2e/...); fi

# Packages without an API server run with the race detector: placement, the
# device writer and the simulator are concurrent by design.
unit=$(go list ./... | grep -v -e '/controllers$' -e '/provider/node$' -e '/test/e2e' -e '/test/reliability')
echo "== unit, contract and fuzz-corpus tests (race detector on)"
# shellcheck disable=SC2086
go test -count=1 -race -timeout 20m $unit

# A bounded fuzz run on top of the committed corpus (which the unit run
# above already replays): the translation must never panic, produce an
# application the server would refuse, or let pod content inject directives.
echo "== fuzzing the pod <-> Flightctl translation (bounded)"
go test -run '^$' -fuzz '^FuzzToApplication$' -fuzztime "${FUZZ_TIME:-15s}" ./provider/translate/
go test -run '^$' -fuzz '^FuzzPodStatus$' -fuzztime "${FUZZ_TIME:-10s}" ./provider/translate/

echo "== envtest suites (real kube-apiserver and etcd from $KUBEBUILDER_ASSETS, simulator over HTTP)"
go test -count=1 -timeout 30m "${envtest_pkgs[@]}" -ginkgo.no-color

if [ ${#e2e_pkgs[@]} -gt 0 ]; then
  echo "== end-to-end suites: quickstart and Helm chart (local control plane, flightctl-sim and manager as processes)"
  # Against the simulator: a FLIGHTCTL_URL left in the caller's shell must
  # not point this run at another Flightctl (test-real below does that).
  # -p 1: each package brings up its own control plane; one at a time.
  env -u FLIGHTCTL_URL -u FLIGHTCTL_TOKEN -u FLIGHTCTL_CA -u FLIGHTCTL_AGENT_ENDPOINT \
    go test -count=1 -p 1 -timeout 30m "${e2e_pkgs[@]}" -ginkgo.no-color
fi

# A real Flightctl v1.2.0 on loopback (built from the module proxy on first
# use), the contract suite and the quickstart scenarios against it with
# fake devices. It fails, never skips, when the service cannot come up.
echo "== real Flightctl v1.2.0: contract suite and quickstart scenarios (hack/test-real.sh)"
hack/test-real.sh

# Faults (5xx, latency, conflicts, an outage, flapping and deleted devices,
# SIGKILLed managers) while pods churn; every phase must converge with no
# workload lost, duplicated or leaked. `make test-reliability` is the full run.
echo "== reliability harness, quick mode (faults and restarts under churn)"
go test -count=1 -timeout 20m ./test/reliability/... -v 2>&1 | grep -v '^\s*{'

# The benchmark harness in quick mode keeps `make bench` working; its
# numbers are printed, not asserted (machines are noisy).
echo "== benchmark harness, quick mode (vk-flightctl vs KWOK)"
BENCH_QUICK=1 go run ./bench/cmd/vkbench

echo "== all suites passed in $((SECONDS - start))s"
