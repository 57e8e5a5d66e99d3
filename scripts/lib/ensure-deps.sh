#!/usr/bin/env bash
# Installs what the demo, the tests or the benchmark need and is missing: npm packages, and
# Debian packages when running as root (otherwise it says what to install and stops).
#   ensure-deps.sh demo|test|bench
set -euo pipefail
cd "$(dirname "$0")/../.."
purpose=${1:-test}

# command -> Debian package
declare -A packages=([etcd]=etcd-server [curl]=curl)
case "$purpose" in
  test)
    packages+=([etcdctl]=etcd-client [discovery.etcd.io]=etcd-discovery [dnsmasq]=dnsmasq-base [openssl]=openssl [promtool]=prometheus)
    ;;
  bench)
    packages+=([wrk]=wrk)
    ;;
esac

missing=()
for cmd in "${!packages[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("${packages[$cmd]}")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
