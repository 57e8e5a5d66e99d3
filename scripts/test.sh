#!/usr/bin/env bash
# The test suite: unit tests and integration tests against real etcd members and the built CLI.
#   scripts/test.sh [--node PATH | --node24] [vitest arguments, e.g. test/integration]
# --node runs vitest, its forked workers, the build and every proxy the tests start on that Node
# binary (they all use process.execPath; `node` on PATH is that binary too). --node24 is the
# pinned Node 24 that CI uses, installed into .cache/node24 when missing (scripts/lib/node24.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

node=$(command -v node)
case "${1:-}" in
  --node)
    [[ $# -ge 2 ]] || { echo "--node needs the path of a node binary" >&2; exit 2; }
    node=$2
    shift 2
    ;;
  --node=*)
    node=${1#--node=}
    shift
    ;;
  --node24)
    node=$(bash scripts/lib/node24.sh)
    shift
    ;;
esac
if ! version=$("$node" --version 2>/dev/null); then
  echo "not a node binary: $node" >&2
  exit 2
fi

bash scripts/lib/ensure-deps.sh test

# Child processes that run `node` by name find this one first.
bin=$(mktemp -d "${TMPDIR:-/tmp}/etcd-proxy-test-node-XXXXXX")
trap 'rm -rf "$bin"' EXIT
ln -s "$(realpath "$node")" "$bin/node"
export PATH="$bin:$PATH"
# test/integration/node-runtime.test.ts checks that the tests really ran on it.
export NODE_VERSION_UNDER_TEST=$version
echo "tests on Node $version ($node)" >&2
"$bin/node" node_modules/vitest/vitest.mjs run "$@"
