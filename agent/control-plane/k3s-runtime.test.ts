import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { validateAgentConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { SERVER_UNIT } from '../k3s/paths.ts';
import { SERVER_SPEC } from '../k3s/testing/fixtures.ts';
import { installedRobot } from '../k3s/testing/installed.ts';
import { InMemoryObjectClient } from '../site/in-memory-client.ts';
import { LeaderSite } from '../site/leader-site.ts';
import { fileSiteSpecSource } from '../site/spec-source.ts';
import { refOf } from '../site/object-client.ts';
import type { KubeObject } from '../site/objects.ts';
import { OUT_OF_SERVICE_TAINT, taintsOf } from '../site/plan.ts';
import { makeK3sControlPlane } from './k3s-runtime.ts';

const log = pino({ level: 'silent' });
const TEMPLATES = fileURLToPath(new URL('../../templates/', import.meta.url));
/** A config as the loader gives it to the runtime: validated, the k3s section's defaults filled. */
function configOf(site: string, node: string, controlPlane: Record<string, unknown>, voters = [node]) {
  return validateAgentConfig({
    site: { id: site },
    node: { id: node, serverCapable: true },
    voters,
    profile: 'test',
    controlPlane: { runtime: 'k3s', ...controlPlane },
  });
}

test('the config loader refuses a k3s section without its settings, naming each field; it fills the defaults', () => {
  assert.throws(
    () => configOf('dock-a', 'spot-1', { k3s: { flannelIface: 'wlan0' }, kubeconfg: 'x' }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.problems.some((p) => p.startsWith('controlPlane.k3s.nodeIp')) &&
      e.problems.some((p) => p.includes('kubeconfg')),
  );
  const c = configOf('dock-a', 'spot-1', { k3s: { nodeIp: '10.20.0.11' } }).controlPlane as Record<
    string,
    unknown
  >;
  assert.equal(c['kubeconfig'], '/etc/rancher/k3s/k3s.yaml');
  assert.equal((c['k3s'] as { flannelIface: string }).flannelIface, 'wlan0');
});

test('the k3s runtime is built from the agent config, reading no site spec', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-rt-'));
  writeFileSync(join(dir, 'site.yaml'), 'id: dock-a\n');
  const config = configOf('dock-a', 'spot-1', {
    k3s: { nodeIp: '10.20.0.11' },
    siteSpecFile: join(dir, 'site.yaml'),
    templatesDir: TEMPLATES,
  });
  const rt = await makeK3sControlPlane(config, log);
  assert.equal(rt.kind, 'k3s');
  const st = rt.status();
  assert.deepEqual([st.server, st.worker, st.details?.['node']], [null, null, 'spot-1']);
});

test("node loss on the k3s runtime: the LeaderSite, through its serving server, taints a lost robot's Node out-of-service, frees its Whereabouts IPs, and takes the taint off on return", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-loss-'));
  writeFileSync(
    join(dir, 'site.yaml'),
    'id: harbor\nnetworks:\n  - {name: dds, master: wlan1, range: 192.168.50.0/24, rangeStart: 192.168.50.10}\n',
  );
  // The robot's own factory, with the robot model for k3s and an in-memory API server.
  const robot = await installedRobot(SERVER_SPEC);
  const api = new InMemoryObjectClient();
  const config = configOf(
    'harbor',
    'r1',
    {
      k3s: {
        nodeIp: SERVER_SPEC.nodeIp,
        flannelIface: SERVER_SPEC.flannelIface,
        labels: SERVER_SPEC.labels,
        tlsSans: SERVER_SPEC.tlsSans,
      },
      siteSpecFile: join(dir, 'site.yaml'),
      templatesDir: TEMPLATES,
    },
    ['r1', 'r2', 'r9'],
  );
  const rt = await makeK3sControlPlane(config, log, undefined, {
    runner: robot,
    probes: { serverReady: async () => robot.active.has(SERVER_UNIT), workerReady: async () => false },
    apiServer: async () => api,
  });
  // The agent's LeaderSite, with the installed spec as the agent reads it (agent/run.ts).
  const specs = fileSiteSpecSource(join(dir, 'site.yaml'), TEMPLATES);
  const site = new LeaderSite({ nodeId: 'r1', log, load: specs.load });
  const installed = (await specs.local())!;
  // A robot that does not serve gives no way to write the site.
  await assert.rejects(rt.siteServer(1), /no serving k3s server of epoch 1 on r1/);

  await rt.startServer(1);
  await site.apply(await rt.siteServer(1), 1, { text: installed, version: 0 });
  // What the cluster holds when r9 goes silent: its Node, a pod on it with a Whereabouts IP, and
  // another robot's pod with one.
  await api.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'r9' }, spec: {} });
  await api.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'r2' }, spec: {} });
  const pod = (name: string, nodeName: string): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default' },
    spec: { nodeName, containers: [{ name: 'c', image: 'busybox' }] },
  });
  await api.apply(pod('talker', 'r9'));
  await api.apply(pod('mapper', 'r2'));
  const pool: KubeObject = {
    apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
    kind: 'IPPool',
    metadata: { name: 'harbor-dds-192.168.50.0-24', namespace: 'kube-system' },
    spec: {
      range: '192.168.50.0/24',
      allocations: {
        '10': { id: 'c1', podref: 'default/talker', ifname: 'net1' },
        '11': { id: 'c2', podref: 'default/mapper', ifname: 'net1' },
      },
    },
  };
  await api.apply(pool);
  for (const [ip, podref] of [
    ['192.168.50.10', 'default/talker'],
    ['192.168.50.11', 'default/mapper'],
  ])
    await api.apply({
      apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
      kind: 'OverlappingRangeIPReservation',
      metadata: { name: ip!, namespace: 'kube-system' },
      spec: { podref, containerid: 'c', ifname: 'net1' },
    });
  const taints = async (n: string) =>
    taintsOf((await api.get({ apiVersion: 'v1', kind: 'Node', name: n }))!).map((t) => t.key);

  await site.markNodeLost(await rt.siteServer(1), 'r9');
  assert.deepEqual(await taints('r9'), [OUT_OF_SERVICE_TAINT.key]);
  assert.deepEqual(await taints('r2'), []);
  const left = (await api.get(refOf(pool)))?.spec as { allocations: Record<string, unknown> };
  assert.deepEqual(Object.keys(left.allocations), ['11']);
  assert.deepEqual(
    (await api.list('whereabouts.cni.cncf.io/v1alpha1', 'OverlappingRangeIPReservation')).map(
      (r) => r.metadata.name,
    ),
    ['192.168.50.11'],
  );

  await site.markNodeReturned(await rt.siteServer(1), 'r9');
  assert.deepEqual(await taints('r9'), []);
  await rt.close();
});
