#!/usr/bin/env bash
# Installs what the demo, the tests or the benchmark need and is missing: npm packages, and
# Debian packages when running as root (otherwise it says what to install and stops).
#   ensure-deps.sh demo|test|bench
set -euo pipefail
cd "$(dirname "$0")/../.."
purpose=${1:-test}
case "$purpose" in
  demo | test | bench) ;;
  *)
    echo "usage: ensure-deps.sh demo|test|bench" >&2
    exit 2
    ;;
esac

# One line per Debian package: the purposes that need it, a command it installs (or py:MODULE,
# a module Debian's /usr/bin/python3 must import), the package.
deps=(
  "demo,test,bench  curl               curl"
  "demo,test,bench  etcd               etcd-server"
  "test             discovery.etcd.io  etcd-discovery"
  "test             dnsmasq            dnsmasq-base"
  "test             etcdctl            etcd-client"
  "test             openssl            openssl"
  "test             promtool           prometheus"
  "test             py:etcd            python3-etcd"
  "test             py:etcd3gw         python3-etcd3gw"
  "bench            nginx              nginx-light"
  "bench            wrk                wrk"
)

missing=()
for line in "${deps[@]}"; do
  read -r purposes cmd package <<<"$line"
  [[ ,$purposes, == *,$purpose,* ]] || continue
  if [[ $cmd == py:* ]]; then
    /usr/bin/python3 -c "import ${cmd#py:}" >/dev/null 2>&1 || missing+=("$package")
  elif ! PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1; then
    missing+=("$package")
  fi
done

if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}" >&2
    # A package with a service (nginx-light, prometheus) must not start it on every interface: the
    # tests and the bench start their own, on loopback. policy-rc.d is Debian's switch for that.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod +x "$policy"
      trap 'rm -f "$policy"' EXIT
    fi
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
