#!/bin/sh
# edgectl-k3s-reap: run by the edgectl agent after `systemctl stop k3s.service` (demotion).
#
# k3s.service has KillMode=process, so stopping it ends the k3s server process (API server,
# supervisor, etcd) but leaves the containerd it started. This stops that containerd, so the next
# role's k3s (k3s-agent) starts its own, and leaves the containerd-shims alone: they hold the pods,
# which keep running and are picked up by the next containerd. It is deliberately narrower than
# k3s-killall.sh, which also kills every pod and removes the CNI interfaces.
#
# Installed by edgectl (agent/k3s/plans.ts installPlan) as /usr/local/lib/edgectl/edgectl-k3s-reap.
# Exit 0 when nothing of the stopped server is left; 1 if k3s.service is still active.
set -eu

if systemctl is-active --quiet k3s.service; then
  echo "edgectl-k3s-reap: k3s.service is still active; stop it first" >&2
  exit 1
fi
# A running agent owns the containerd; nothing of a stopped server is left then, because the worker
# (re)join plan reaps before it starts the agent.
if systemctl is-active --quiet k3s-agent.service; then
  exit 0
fi

# signal SIG: send SIG to every containerd k3s extracted (data-dir bin/containerd, not the shims);
# succeed if there was one.
signal() {
  found=1
  for dir in /proc/[0-9]*; do
    exe=$(readlink "$dir/exe" 2>/dev/null) || continue
    case "$exe" in
      /var/lib/rancher/k3s/data/*/bin/containerd)
        if kill "-$1" "${dir#/proc/}" 2>/dev/null; then found=0; fi
        ;;
    esac
  done
  return "$found"
}

signal TERM || exit 0
i=0
while [ "$i" -lt 10 ]; do
  sleep 1
  signal 0 || exit 0
  i=$((i + 1))
done
signal KILL || true
exit 0
