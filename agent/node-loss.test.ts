/**
 * Node loss on the k3s runtime: three agents whose control plane is the k3s runtime on robot models
 * (agent/k3s/testing/robot-model.ts), and whose site applier writes to one in-memory object store
 * (the leader's API server). When a robot goes silent past the grace period, the leader taints its
 * Node out-of-service and frees its Whereabouts IPs; when it is heard again, the taint goes. The same
 * SiteApplier on the k3s runtime runs against a real kube-apiserver in
 * test/integration/site-apiserver.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Agent } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { K3sControlPlane } from './control-plane/k3s.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { AGENT_UNIT, SERVER_UNIT } from './k3s/paths.ts';
import { SERVER_SPEC } from './k3s/testing/fixtures.ts';
import { installedRobot } from './k3s/testing/installed.ts';
import { StateStore } from './persistence/state-store.ts';
import { InMemoryObjectClient } from './site/in-memory-client.ts';
import { leaderSiteApplier } from './site/leader-site.ts';
import type { KubeObject } from './site/objects.ts';
import { OUT_OF_SERVICE_TAINT, taintsOf } from './site/plan.ts';
import { parseSiteSpec } from './site/spec.ts';
import { InMemoryNetwork } from './transport/in-memory.ts';

const fastLifecycle = {
  discoveryWindowMs: 50,
  serverStartTimeoutMs: 5000,
  siteApplyTimeoutMs: 5000,
  joinTimeoutMs: 5000,
  reconcileEveryMs: 60_000,
  retryMinMs: 20,
  retryMaxMs: 200,
  joinRetryMaxMs: 200,
};

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`${what}: not in time`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('on the k3s runtime, the leader taints a lost robot out-of-service, frees its IPs, and untaints it on return', async () => {
  const names = ['k1', 'k2', 'k3'];
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-node-loss-'));
  const net = new InMemoryNetwork();
  const bus = new InMemoryDiscoveryBus();
  const cluster = new InMemoryObjectClient();
  const silent = pino({ level: 'silent' });
  const agents = await Promise.all(
    names.map(async (id, i) => {
      const config = validateAgentConfig(
        {
          site: { id: 'loss' },
          node: { id, serverCapable: true },
          voters: names,
          profile: 'test',
          stateDir: join(dir, id),
          // Lost 400 ms after it was last heard: the grace period (site spec nodeLoss.graceSeconds).
          membership: { suspectAfterMs: 100, deadAfterMs: 300, lostAfterMs: 400 },
          controlPlane: { runtime: 'k3s', k3s: { nodeIp: `10.20.0.${i + 1}` }, siteSpecFile: 'site.yaml' },
        },
        'agent config',
        () => parseSiteSpec({ id: 'loss' }),
      );
      const spec = { ...SERVER_SPEC, nodeName: id, nodeIp: `10.20.0.${i + 1}` };
      const model = await installedRobot(spec);
      const runtime = new K3sControlPlane({
        runner: model,
        node: spec,
        probes: {
          serverReady: async () => model.active.has(SERVER_UNIT),
          workerReady: async () => model.active.has(AGENT_UNIT),
        },
        pollMs: 1,
        delay: () => new Promise((r) => setImmediate(r)),
      });
      return new Agent({
        config,
        transport: net.connect(id),
        discovery: new InMemoryDiscovery(
          bus,
          {
            siteId: 'loss',
            nodeId: id,
            agentVersion: '0.1.0',
            role: 'starting',
            term: 0,
            port: 7946,
            serverCapable: true,
          },
          { addresses: [`10.20.0.${i + 1}`] },
        ),
        runtime,
        site: leaderSiteApplier({
          spec: config.siteSpec,
          log: silent,
          // The k3s server's API, as the in-memory store: only while this robot's server serves.
          server: () => (runtime.apiServer(), { kind: 'objects', client: cluster }),
        }),
        store: new StateStore(config.stateDir),
        log: silent,
        lifecycleTiming: fastLifecycle,
        seed: i + 1,
      });
    }),
  );
  try {
    await Promise.all(agents.map((a) => a.start()));
    await until(() => agents.every((a) => a.ready()), 'a site formed');
    const leader = agents.find((a) => a.role() === 'leader')!;
    assert.equal(leader.status().controlPlane.runtime, 'k3s');
    const victim = agents.find((a) => a !== leader)!.nodeId;
    // The robot's Node, a pod on it and the Whereabouts IP the pod holds, as the cluster has them.
    await cluster.apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: victim },
      spec: {},
    } as KubeObject);
    await cluster.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'talker', namespace: 'default' },
      spec: { nodeName: victim, containers: [{ name: 'c', image: 'ros' }] },
    } as KubeObject);
    const pool = {
      apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'loss-fleet', namespace: 'kube-system' },
      spec: {
        range: '192.168.50.0/24',
        allocations: { '10': { id: 'c1', podref: 'default/talker', ifname: 'net1' } },
      },
    } as KubeObject;
    await cluster.apply(pool);
    const node = async () => (await cluster.get({ apiVersion: 'v1', kind: 'Node', name: victim }))!;
    const outOfService = async () => taintsOf(await node()).some((t) => t.key === OUT_OF_SERVICE_TAINT.key);
    const allocations = async () =>
      Object.keys(
        (
          (await cluster.get({ ...pool, name: pool.metadata.name, namespace: 'kube-system' }))!.spec as {
            allocations: object;
          }
        ).allocations,
      );

    // The robot goes silent: lost past the grace period.
    net.loss = (from, to) => (from === victim || to === victim ? 1 : 0);
    await until(outOfService, `${victim} tainted out-of-service`);
    await until(async () => (await allocations()).length === 0, `${victim}'s Whereabouts IP freed`);
    assert.equal(leader.role(), 'leader');

    // It is heard again: the taint goes.
    net.loss = () => 0;
    await until(async () => !(await outOfService()), `${victim} untainted on return`);
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
