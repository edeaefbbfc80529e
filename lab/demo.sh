#!/usr/bin/env bash
# The README's main job: a site of 5 robots elects a leader, loses it to power loss, and re-forms.
# Until the network-namespace lab lands, this runs the deterministic simulator (edgectl sim),
# with 10% datagram loss and a 1.5 s loss burst that must not cause a false failover.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "== A 5-robot site: elect, lose the leader at 20 s, ride out a 1.5 s loss burst at 40 s, hand over at 50 s =="
npx --no-install edgectl sim --nodes 5 --voters 5 --seed 42 --duration 60s --loss 0.1 \
  --burst 1.5s@40s --fault kill-leader@20s --fault restart:all@30s \
  --fault transfer@50s "$@"
