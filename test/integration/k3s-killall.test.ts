/**
 * The k3s uninstall's KILLALL_SCRIPT (agent/k3s/plans.ts) run for real, as root, in a private mount
 * namespace with a tmpfs over /var/lib, so the host's /var/lib is never touched: a process started
 * from k3s's data dir (as containerd-shim is) and mounts under the kubelet's and k3s's dirs (as pod
 * volumes are) must all be gone after it, and a second run must succeed with nothing left to do.
 * No k3s is needed: the script keys on paths, not on k3s.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { KILLALL_SCRIPT } from '../../agent/k3s/plans.ts';

const SCENE = `
set -u
count() { n=0; for d in /proc/[0-9]*; do case "$(readlink "$d/exe" 2>/dev/null)" in /var/lib/rancher/k3s/data/*) n=$((n+1));; esac; done; echo "$n"; }
mounts() { grep -c ' /var/lib/\\(kubelet\\|rancher\\)' /proc/self/mounts; }
mount -t tmpfs edgectl-test /var/lib
mkdir -p /var/lib/rancher/k3s/data/abc/bin /var/lib/rancher/k3s/agent/images /var/lib/kubelet/pods/p1
cp "$(command -v sleep)" /var/lib/rancher/k3s/data/abc/bin/containerd-shim
/var/lib/rancher/k3s/data/abc/bin/containerd-shim 300 &
mount -t tmpfs pod /var/lib/kubelet/pods/p1
mkdir -p /var/lib/kubelet/pods/p1/volume
mount -t tmpfs volume /var/lib/kubelet/pods/p1/volume
mount -t tmpfs images /var/lib/rancher/k3s/agent/images
sleep 0.2
echo "before $(count) $(mounts)"
sh -c "$1"; echo "first $?"
wait
echo "after $(count) $(mounts)"
sh -c "$1"; echo "second $?"
`;

test('uninstall killall: ends what runs from the k3s data dir and unmounts the kubelet and k3s mounts, twice', () => {
  assert.equal(process.getuid?.(), 0, 'run as root (mount namespaces), as CI does');
  const r = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', 'sh', '-c', SCENE, 'scene', KILLALL_SCRIPT],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  assert.equal(r.status, 0, r.stderr);
  const lines = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([k, ...v]) => [k, v.join(' ')]),
  );
  assert.equal(
    lines.before,
    '1 3',
    `a shim and 3 mounts (the tmpfs over /var/lib itself is not counted): ${r.stdout}`,
  );
  assert.equal(lines.first, '0');
  assert.equal(lines.after, '0 0');
  assert.equal(lines.second, '0');
});
