#!/usr/bin/env bash
# make demo: a local control plane, the Flightctl simulator and the
# vk-flightctl manager, then the seven scenarios of docs/quickstart.md run
# with kubectl. Everything stays up afterwards; `make demo-down` stops it.
#
# Usage: hack/demo.sh [--flightctl sim|real] [--reconnect-timeout 20s] [--status-poll-interval 2s]
#                     [--manager-as-admin] [--scenarios 1,2,3,4,5,6,7]
#
# A re-run starts clean: it stops the previous demo first. The work is in
# hack/demo/main.go and test/quickstart (shared with the e2e suite); this
# script only builds and runs it. Exits non-zero unless all seven pass.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

"$ROOT/hack/demo-down.sh" --quiet
mkdir -p "$ROOT/bin"
go build -o "$ROOT/bin/demo" ./hack/demo
exec "$ROOT/bin/demo" "$@"
