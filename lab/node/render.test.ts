import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import { readFileSync } from 'node:fs';
import { K3S_CNI_BIN_DIR, K3S_CNI_CONF_DIR } from '../../agent/site/render.ts';
import {
  KUBE_SERVICE_CHAIN,
  NODE_BASE_CNI_PLUGINS,
  renderContainerdConfig,
  renderHolderScript,
  renderKubeletConfig,
  renderKubeServiceNat,
  renderPodNetworkConfig,
} from './render.ts';

const DIR = '/tmp/n/r1';
const SOCK = `${DIR}/containerd.sock`;

test('kubelet: cgroup v1 allowed, cgroupfs under the node own root, the node address and containerd', () => {
  const c = parse(renderKubeletConfig(DIR, SOCK, '/edgectl-r1', '10.77.1.1')) as Record<string, unknown>;
  assert.equal(c['kind'], 'KubeletConfiguration');
  assert.equal(c['failCgroupV1'], false);
  assert.equal(c['cgroupDriver'], 'cgroupfs');
  assert.equal(c['cgroupRoot'], '/edgectl-r1');
  assert.equal(c['address'], '10.77.1.1');
  assert.equal(c['containerRuntimeEndpoint'], `unix://${SOCK}`);
  assert.equal(c['readOnlyPort'], 0);
  assert.ok(String(c['podLogsDir']).startsWith(DIR), 'pod logs stay in the node directory');
});

test('containerd: its own root, state and socket, the local pause image, oom_score_adj restricted', () => {
  const t = renderContainerdConfig(DIR, SOCK, 'edgectl.local/pause:k');
  for (const line of [
    `root = "${DIR}/containerd/root"`,
    `state = "${DIR}/containerd/state"`,
    `address = "${SOCK}"`,
    'sandbox_image = "edgectl.local/pause:k"',
    'restrict_oom_score_adj = true',
    `bin_dir = "${DIR}/cni/bin"`,
    `conf_dir = "${K3S_CNI_CONF_DIR}"`,
  ])
    assert.ok(t.includes(line), `containerd.toml has ${line}`);
});

test('CNI: the pod network is a bridge conflist for Multus to wrap; the base plugins are the ones the DaemonSet skips', () => {
  const c = JSON.parse(renderPodNetworkConfig(DIR, '10.244.1.0/24')) as {
    cniVersion: string;
    plugins: { type: string; ipam: { ranges: { subnet: string }[][] } }[];
  };
  assert.ok(c.cniVersion);
  assert.deepEqual(
    c.plugins.map((d) => [d.type, d.ipam.ranges[0]![0]!.subnet]),
    [['bridge', '10.244.1.0/24']],
  );
  const multus = readFileSync(new URL('../../templates/site/multus.yaml', import.meta.url), 'utf8');
  const skip = /name: SKIP_CNI_BINARIES\s+value: (\S+)/.exec(multus)![1]!.split(',');
  assert.deepEqual(
    NODE_BASE_CNI_PLUGINS.filter((p) => !skip.includes(p)),
    [],
    'the init container leaves every base plugin alone',
  );
});

test('the kubernetes Service address goes to the API server the node reports to, from the node and its pods', () => {
  const first = renderKubeServiceNat('https://10.77.1.2:6443', true).map((a) => a.join(' '));
  assert.deepEqual(first, [
    `-w 5 -t nat -N ${KUBE_SERVICE_CHAIN}`,
    `-w 5 -t nat -A OUTPUT -j ${KUBE_SERVICE_CHAIN}`,
    `-w 5 -t nat -A PREROUTING -j ${KUBE_SERVICE_CHAIN}`,
    `-w 5 -t nat -F ${KUBE_SERVICE_CHAIN}`,
    `-w 5 -t nat -A ${KUBE_SERVICE_CHAIN} -d 10.0.0.1/32 -p tcp --dport 443 -j DNAT --to-destination 10.77.1.2:6443`,
  ]);
  assert.deepEqual(
    renderKubeServiceNat('https://10.77.1.3:6443', false).map((a) => a.join(' ')),
    [
      `-w 5 -t nat -F ${KUBE_SERVICE_CHAIN}`,
      `-w 5 -t nat -A ${KUBE_SERVICE_CHAIN} -d 10.0.0.1/32 -p tcp --dport 443 -j DNAT --to-destination 10.77.1.3:6443`,
    ],
  );
});

test('holder: cgroups moved back over a fresh sysfs, node-private mounts, then it sleeps', () => {
  const lines = renderHolderScript(DIR).split('\n');
  const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
  assert.ok(at('mount --rbind /sys/fs/cgroup') < at('mount -t sysfs'));
  assert.ok(at('mount -t sysfs') < at('mount --move'));
  for (const m of [
    '/run/containerd',
    '/var/lib/cni',
    '/run/netns',
    `'${K3S_CNI_CONF_DIR}'`,
    `'${K3S_CNI_BIN_DIR}'`,
  ])
    assert.ok(
      lines.some((l) => l.startsWith('mount ') && l.endsWith(m)),
      `${m} is mounted privately`,
    );
  assert.equal(lines.at(-1), 'exec sleep infinity');
});
