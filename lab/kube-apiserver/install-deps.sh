#!/usr/bin/env bash
# Install (if missing) the Debian packages the lab needs. Idempotent, and
# silent when everything is already installed.
#
#   lab/kube-apiserver/install-deps.sh            # install what is missing
#   LAB_DEPS_CHECK_ONLY=1 lab/kube-apiserver/install-deps.sh   # report, exit 1 if missing
#
# Services (sshd, avahi-daemon) are NOT started by the install: the lab runs
# its own copies inside network namespaces, so a policy-rc.d that forbids
# starting services is put in place for the duration of apt-get install when
# the machine does not already have one.
set -euo pipefail

PACKAGES=(
  etcd-server    # etcd (3.4.x on bookworm) for kube-apiserver
  etcd-client    # etcdctl
  iproute2       # ip netns / veth for the simulated site
  nftables       # per-namespace firewalling / fault injection
  openssh-server # sshd on the simulated robots
  avahi-daemon   # mDNS discovery on the simulated LAN
  avahi-utils    # avahi-browse / avahi-publish
  dbus           # a private bus for avahi-daemon in the interop test
  util-linux     # unshare, for avahi's private /run
  tcpdump        # packet capture while debugging the lab and in the wire-capture test
  openssl        # the lab's site identity (CA, serving certificate, keys)
  sudo           # the SSH tests log in as a non-root user who uses sudo, as on robots
  curl           # smoke.sh
  chromium       # the dashboard's browser test (headless; no browser download)
  containerd     # the real lab node's container runtime (CRI)
  runc           # the OCI runtime containerd starts
  containernetworking-plugins # CNI plugins (loopback, bridge, macvlan...) under /usr/lib/cni
  busybox-static # a static userland for locally built images and in-pod checks
)

log() { printf '[lab/install-deps] %s\n' "$*" >&2; }

SUDO=()
if (( EUID != 0 )); then
  command -v sudo >/dev/null || { log "need root (or sudo) to install packages"; exit 1; }
  SUDO=(sudo -n)
fi

is_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" == installed ]]
}

# A package "exists" when apt has an install candidate for it.
has_candidate() {
  local cand
  cand="$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^[[:space:]]*Candidate:[[:space:]]*//p' | head -n1)"
  [[ -n $cand && $cand != "(none)" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done
(( ${#missing[@]} == 0 )) && exit 0

if [[ ${LAB_DEPS_CHECK_ONLY:-} == 1 ]]; then
  log "missing: ${missing[*]}"
  exit 1
fi

# Refresh the package lists once if anything we need has no candidate yet
# (fresh machines have empty or stale lists).
need_update=0
for p in "${missing[@]}"; do has_candidate "$p" || need_update=1; done
if (( need_update )); then
  log "apt-get update"
  "${SUDO[@]}" apt-get update -qq >&2
fi

to_install=() unavailable=()
for p in "${missing[@]}"; do
  if has_candidate "$p"; then to_install+=("$p"); else unavailable+=("$p"); fi
done
(( ${#unavailable[@]} )) && log "WARNING: no such package in the configured apt sources: ${unavailable[*]}"

if (( ${#to_install[@]} )); then
  log "installing: ${to_install[*]}"
  placed_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    placed_policy=1
  fi
  rc=0
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends -o Dpkg::Use-Pty=0 "${to_install[@]}" >&2 || rc=$?
  (( placed_policy )) && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  (( rc == 0 )) || { log "apt-get install failed (exit $rc)"; exit "$rc"; }
fi

(( ${#unavailable[@]} == 0 )) || exit 1
