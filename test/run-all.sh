#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every tier.
# CI (.ci/run) calls exactly this script.
set -euo pipefail
cd "$(dirname "$0")/.."

# npm ci installs the pinned Node 24 runtime (the `node` package) and every dependency.
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# npm run puts node_modules/.bin first on PATH, so every script below runs on the pinned Node 24.
npm test
