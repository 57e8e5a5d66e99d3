#!/usr/bin/env bash
# The demo: a real 3-member etcd on loopback and etcd-proxy in front of it; Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/lib/ensure-deps.sh demo
npm run --silent build
exec node scripts/demo.mjs "$@"
