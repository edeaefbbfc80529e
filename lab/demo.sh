#!/usr/bin/env bash
# The README's main job: a 3-robot site in network namespaces, every robot a real node (containerd +
# kubelet + Multus + Whereabouts), elects a leader, which starts a real kube-apiserver + etcd +
# kube-controller-manager + kube-scheduler; a Deployment and a StatefulSet run with site addresses,
# the StatefulSet's pod on the leader; the leader loses power; the site re-forms on a new leader,
# the survivors' pods keep running and the leader's pod runs again on a survivor with a site
# address (lab/scenarios/workload-leader-loss.yaml). Prints the report (and writes its timeline
# picture). Needs root: namespaces, bridges, nftables, cgroups.
#
# It installs what it needs first: Debian packages (iproute2, nftables, openssh-server,
# etcd-server, containerd, runc, CNI plugins, ...), the npm dependencies with the pinned Node 24,
# kube-apiserver and the node components, built once from the Go module proxy and cached in
# /var/cache/edgectl (about 5 minutes, then 10 to 25 for the node components, the first time).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "lab/demo.sh: the lab needs root (network namespaces, bridges, nftables): run sudo bash lab/demo.sh" >&2
  exit 1
fi
if ! LAB_DEPS_CHECK_ONLY=1 bash lab/kube-apiserver/install-deps.sh >/dev/null 2>&1; then
  apt-get update -qq
  bash lab/kube-apiserver/install-deps.sh
fi
if [ ! -x node_modules/.bin/node ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
bash lab/kube-apiserver/build.sh >/dev/null
bash lab/node/build.sh >/dev/null

REPORT="${REPORT:-$PWD/lab-report}"
echo "== A 3-robot site of real nodes with a workload: elect, power off the leader, re-form; report in $REPORT =="
status=0
npx --no-install edgectl lab run lab/scenarios/workload-leader-loss.yaml --site demo --report "$REPORT" "$@" || status=$?
echo
cat "$REPORT/report.md"
echo "Timeline picture: $REPORT/timeline.svg (agent logs: $REPORT/logs/)"
exit "$status"
