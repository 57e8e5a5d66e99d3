#!/usr/bin/env bash
# The test suite: unit tests and integration tests against real etcd members and the built CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lib/ensure-deps.sh test
exec npx vitest run "$@"
