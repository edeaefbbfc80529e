/**
 * The SiteApplier contract against a REAL kube-apiserver + etcd (lab/kube-apiserver/apiserver.ts):
 * the site's objects, the CRDs from templates/ and the Multus/Whereabouts installs are accepted and
 * read back as applied, re-apply is idempotent, pruning works, and node loss taints the Node and
 * frees its Whereabouts IPs; and the same node loss on the k3s runtime's own path (the agent's
 * LeaderSite through the runtime's siteServer: its factory, a robot model for k3s, the admin
 * kubeconfig k3s would write). No kubelet or controller-manager runs, so nothing here shows Multus or
 * Whereabouts pods working (docs/site.md says what only reading could check).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { validateAgentConfig } from '../../agent/config.ts';
import { makeK3sControlPlane } from '../../agent/control-plane/k3s-runtime.ts';
import { SERVER_UNIT } from '../../agent/k3s/paths.ts';
import { SERVER_SPEC } from '../../agent/k3s/testing/fixtures.ts';
import { installedRobot } from '../../agent/k3s/testing/installed.ts';
import type { KubeObject } from '../../agent/site/objects.ts';
import { OUT_OF_SERVICE_TAINT, taintsOf } from '../../agent/site/plan.ts';
import {
  createApiServerIdentity,
  startApiServer,
  type ApiServerHandle,
} from '../../lab/kube-apiserver/apiserver.ts';
import { readAddonTemplates } from '../../agent/site/addons.ts';
import { KubeSiteApplier } from '../../agent/site/kube-site.ts';
import { LeaderSite } from '../../agent/site/leader-site.ts';
import { fileSiteSpecSource } from '../../agent/site/spec-source.ts';
import { describeSiteApplierContract } from '../../agent/site/applier.contract.ts';
import { KubeObjectClient } from '../../agent/site/kube-client.ts';
import { renderSite } from '../../agent/site/render.ts';
import { renderSiteAddons } from '../../agent/site/addons.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-apiserver-'));
let server: ApiServerHandle | undefined;
after(async () => {
  try {
    await server?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

describeSiteApplierContract('kube-apiserver', async () => {
  const identity = await createApiServerIdentity(join(dir, 'identity'), { sans: [], nodes: [] });
  server = await startApiServer({ identity, dir: join(dir, 'server') });
  const kubeConfig = server.kubeConfig();
  const templates = readAddonTemplates();
  return {
    cluster: new KubeObjectClient(kubeConfig),
    applier: (spec) => new KubeSiteApplier({ kubeConfig, spec, templates }),
    render: (spec, epoch) => [
      ...renderSiteAddons(templates, { site: spec.id, epoch }),
      ...renderSite(spec, { epoch }),
    ],
  };
});

test("on the k3s runtime, the leader's LeaderSite taints a lost robot's Node out-of-service on a real API server, frees its Whereabouts IP, and untaints it on return", async () => {
  if (!server) throw new Error('the contract above starts the server');
  // The admin kubeconfig k3s would write at /etc/rancher/k3s/k3s.yaml.
  const kubeconfig = join(dir, 'k3s.yaml');
  writeFileSync(kubeconfig, server.kubeConfig().exportConfig(), { mode: 0o600 });
  writeFileSync(join(dir, 'loss-site.yaml'), 'id: k3s-loss\n');
  const robot = await installedRobot(SERVER_SPEC);
  const config = validateAgentConfig({
    site: { id: 'k3s-loss' },
    node: { id: 'r1', serverCapable: true },
    voters: ['r1', 'r2', 'k3s-r9'],
    profile: 'test',
    controlPlane: {
      runtime: 'k3s',
      k3s: { nodeIp: SERVER_SPEC.nodeIp, flannelIface: SERVER_SPEC.flannelIface },
      siteSpecFile: join(dir, 'loss-site.yaml'),
      templatesDir: fileURLToPath(new URL('../../templates/', import.meta.url)),
      kubeconfig,
    },
  });
  // The runtime's own factory; only k3s itself is the robot model. Its API client is the robot's:
  // the Kubernetes client's child process (agent/site/kube-child.ts), closed by rt.close().
  const rt = await makeK3sControlPlane(config, pino({ level: 'silent' }), undefined, {
    runner: robot,
    probes: { serverReady: async () => robot.active.has(SERVER_UNIT), workerReady: async () => false },
  });
  // The agent's LeaderSite, with the installed spec as the agent reads it (agent/run.ts).
  const specs = fileSiteSpecSource(
    join(dir, 'loss-site.yaml'),
    fileURLToPath(new URL('../../templates/', import.meta.url)),
  );
  const site = new LeaderSite({ nodeId: 'r1', log: pino({ level: 'silent' }), load: specs.load });
  const installed = (await specs.local())!;
  await rt.startServer(1);
  await site.apply(await rt.siteServer(1), 1, { text: installed, version: 0 });
  const cluster = new KubeObjectClient(server.kubeConfig());
  await cluster.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'k3s-r9' }, spec: {} });
  await cluster.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'k3s-talker', namespace: 'default' },
    spec: { nodeName: 'k3s-r9', containers: [{ name: 'c', image: 'registry.invalid/ros:jazzy' }] },
  });
  const pool: KubeObject = {
    apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
    kind: 'IPPool',
    metadata: { name: 'k3s-loss-dds-192.168.70.0-24', namespace: 'kube-system' },
    spec: {
      range: '192.168.70.0/24',
      allocations: { '10': { id: 'c1', podref: 'default/k3s-talker', ifname: 'net1' } },
    },
  };
  await cluster.apply(pool);
  const taints = async () =>
    taintsOf((await cluster.get({ apiVersion: 'v1', kind: 'Node', name: 'k3s-r9' }))!)
      .map((t) => t.key)
      .filter((k) => k !== 'node.kubernetes.io/not-ready');

  await site.markNodeLost(await rt.siteServer(1), 'k3s-r9');
  assert.deepEqual(await taints(), [OUT_OF_SERVICE_TAINT.key]);
  const poolAfter = await cluster.get({
    apiVersion: pool.apiVersion,
    kind: pool.kind,
    namespace: 'kube-system',
    name: pool.metadata.name,
  });
  assert.deepEqual((poolAfter?.spec as { allocations?: object }).allocations ?? {}, {});

  await site.markNodeReturned(await rt.siteServer(1), 'k3s-r9');
  assert.deepEqual(await taints(), []);
  await rt.close();
});
