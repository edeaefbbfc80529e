import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parse } from 'yaml';
import {
  K3S_CNI_CONF_DIR,
  WHEREABOUTS_CONFIGURATION_PATH,
  WHEREABOUTS_KUBECONFIG,
} from '../../agent/site/render.ts';
import {
  renderContainerdConfig,
  renderHolderScript,
  renderKubeletConfig,
  renderMultusConfig,
  renderWhereaboutsConf,
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

test('CNI: Whereabouts files are where the site NADs name them; Multus delegates to a pod bridge', () => {
  const wb = JSON.parse(renderWhereaboutsConf(DIR)) as { kubernetes: { kubeconfig: string } };
  assert.equal(wb.kubernetes.kubeconfig, WHEREABOUTS_KUBECONFIG);
  assert.equal(WHEREABOUTS_CONFIGURATION_PATH.startsWith(`${K3S_CNI_CONF_DIR}/`), true);
  const m = JSON.parse(renderMultusConfig(DIR, '10.244.1.0/24')) as {
    type: string;
    binDir: string;
    delegates: { type: string; ipam: { ranges: { subnet: string }[][] } }[];
  };
  assert.equal(m.type, 'multus');
  assert.equal(m.binDir, `${DIR}/cni/bin`);
  assert.deepEqual(
    m.delegates.map((d) => [d.type, d.ipam.ranges[0]![0]!.subnet]),
    [['bridge', '10.244.1.0/24']],
  );
});

test('holder: cgroups moved back over a fresh sysfs, node-private mounts, then it sleeps', () => {
  const lines = renderHolderScript(DIR).split('\n');
  const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
  assert.ok(at('mount --rbind /sys/fs/cgroup') < at('mount -t sysfs'));
  assert.ok(at('mount -t sysfs') < at('mount --move'));
  for (const m of ['/run/containerd', '/var/lib/cni', '/run/netns', `'${K3S_CNI_CONF_DIR}'`])
    assert.ok(
      lines.some((l) => l.startsWith('mount ') && l.endsWith(m)),
      `${m} is mounted privately`,
    );
  assert.equal(lines.at(-1), 'exec sleep infinity');
});
