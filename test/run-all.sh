#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every tier.
# CI (.ci/run) calls exactly this script, as root.
#
# Tiers: type check, lint and format; unit and contract tests; scenario goldens; property and
# model-based tests; and, as root, the real-network tiers (network namespaces, real UDP and mDNS,
# Avahi interop). Without root the real-network tests fail with a message saying so; they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the real-network tiers (iproute2, avahi, dbus, nftables, ...), when root.
if [ "$(id -u)" = 0 ]; then
  if ! LAB_DEPS_CHECK_ONLY=1 bash lab/kube-apiserver/install-deps.sh >/dev/null 2>&1; then
    apt-get update -qq
    bash lab/kube-apiserver/install-deps.sh
  fi
else
  echo "test/run-all.sh: not root: the network-namespace tests will fail (run as root, as CI does)" >&2
fi

# npm ci installs the pinned Node 24 runtime (the `node` package) and every dependency.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# npm run puts node_modules/.bin first on PATH, so every script below runs on the pinned Node 24.
npm test
