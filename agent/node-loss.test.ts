/**
 * The agent's LeaderSite on the k3s runtime: agents whose control plane is the k3s runtime's own
 * factory (agent/control-plane/k3s-runtime.ts) on robot models (agent/k3s/testing/robot-model.ts),
 * and whose API server is one in-memory object store. When a robot goes silent past the grace
 * period, the leader taints its Node out-of-service and frees its Whereabouts IPs; when it is
 * heard again, the taint goes. test/integration/site-apiserver.test.ts does the same on a real
 * kube-apiserver.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Agent } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { makeK3sControlPlane } from './control-plane/k3s-runtime.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { AGENT_UNIT, SERVER_UNIT } from './k3s/paths.ts';
import { K3sSettingsSchema } from './k3s/settings.ts';
import { installedRobot } from './k3s/testing/installed.ts';
import { StateStore } from './persistence/state-store.ts';
import { fileSiteSpecSource } from './site/spec-source.ts';
import { InMemoryObjectClient } from './site/in-memory-client.ts';
import { refOf } from './site/object-client.ts';
import type { KubeObject } from './site/objects.ts';
import { OUT_OF_SERVICE_TAINT, taintsOf } from './site/plan.ts';
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

const TEMPLATES = fileURLToPath(new URL('../templates/', import.meta.url));

/**
 * k3sSite: agents of site `loss` on the k3s runtime over robot models, wired as agent/run.ts wires
 * a robot's (the installed spec from `<dir>/site.yaml`, the repository's templates); `cluster` is
 * the API server of whichever robot serves.
 */
async function k3sSite(
  names: readonly string[],
  dir: string,
  cluster: InMemoryObjectClient,
  lifecycleTiming = fastLifecycle,
) {
  const net = new InMemoryNetwork();
  const bus = new InMemoryDiscoveryBus();
  const silent = pino({ level: 'silent' });
  const agents = await Promise.all(
    names.map(async (id, i) => {
      const nodeIp = `10.20.0.${i + 1}`;
      const config = validateAgentConfig({
        site: { id: 'loss' },
        node: { id, serverCapable: true },
        voters: names,
        profile: 'test',
        stateDir: join(dir, id),
        // Lost 400 ms after it was last heard: the grace period (site spec nodeLoss.graceSeconds).
        membership: { suspectAfterMs: 100, deadAfterMs: 300, lostAfterMs: 400 },
        controlPlane: {
          runtime: 'k3s',
          k3s: { nodeIp },
          siteSpecFile: join(dir, 'site.yaml'),
          templatesDir: TEMPLATES,
        },
      });
      const model = await installedRobot({
        ...K3sSettingsSchema.parse({ nodeIp }),
        site: 'loss',
        nodeName: id,
      });
      const runtime = await makeK3sControlPlane(config, silent, undefined, {
        runner: model,
        probes: {
          serverReady: async () => model.active.has(SERVER_UNIT),
          workerReady: async () => model.active.has(AGENT_UNIT),
        },
        apiServer: async () => cluster,
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
          { addresses: [nodeIp] },
        ),
        runtime,
        store: new StateStore(config.stateDir),
        log: silent,
        lifecycleTiming,
        seed: i + 1,
        siteSpecs: fileSiteSpecSource(join(dir, 'site.yaml'), TEMPLATES),
      });
    }),
  );
  return { net, agents };
}

test('on the k3s runtime, the leader taints a lost robot out-of-service, frees its IPs, and untaints it on return', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-node-loss-'));
  writeFileSync(join(dir, 'site.yaml'), 'id: loss\n');
  // The API server of whichever robot serves: one store, as the site's objects survive a leader change.
  const cluster = new InMemoryObjectClient();
  const { net, agents } = await k3sSite(['k1', 'k2', 'k3'], dir, cluster);
  try {
    await Promise.all(agents.map((a) => a.start()));
    await until(() => agents.every((a) => a.ready()), 'a site formed');
    const leader = agents.find((a) => a.role() === 'leader')!;
    assert.equal(leader.status().controlPlane.runtime, 'k3s');
    const victim = agents.find((a) => a !== leader)!.status().node;
    // The robot's Node, a pod on it and the Whereabouts IP the pod holds, as the cluster has them.
    await cluster.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: victim }, spec: {} });
    await cluster.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'talker', namespace: 'default' },
      spec: { nodeName: victim, containers: [{ name: 'c', image: 'ros' }] },
    });
    const pool: KubeObject = {
      apiVersion: 'whereabouts.cni.cncf.io/v1alpha1',
      kind: 'IPPool',
      metadata: { name: 'loss-fleet', namespace: 'kube-system' },
      spec: {
        range: '192.168.50.0/24',
        allocations: { '10': { id: 'c1', podref: 'default/talker', ifname: 'net1' } },
      },
    };
    await cluster.apply(pool);
    const outOfService = async () =>
      taintsOf((await cluster.get({ apiVersion: 'v1', kind: 'Node', name: victim }))!).some(
        (t) => t.key === OUT_OF_SERVICE_TAINT.key,
      );
    const allocations = async () =>
      Object.keys(((await cluster.get(refOf(pool)))!.spec as { allocations: object }).allocations);

    // The robot goes silent: lost past the grace period.
    net.loss = (from, to) => (from === victim || to === victim ? 1 : 0);
    await until(outOfService, `${victim} tainted out-of-service`);
    // (Whoever leads acts on it: under a loaded machine's pauses, the test profile's short timeouts
    // may move leadership to the other robot, which is as good.)
    await until(async () => (await allocations()).length === 0, `${victim}'s Whereabouts IP freed`);

    // It is heard again: the taint goes.
    net.loss = () => 0;
    await until(async () => !(await outOfService()), `${victim} untainted on return`);
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

/** TaintLog: the in-memory API server, recording every write that takes a Node's out-of-service taint off. */
class TaintLog extends InMemoryObjectClient {
  readonly untainted: string[] = [];
  /** Site applies seen: each applies the site's Namespace once. */
  namespaceApplies = 0;
  override async apply(obj: Parameters<InMemoryObjectClient['apply']>[0]) {
    if (obj.kind === 'Namespace') this.namespaceApplies++;
    return super.apply(obj);
  }
  override async mergePatch(...args: Parameters<InMemoryObjectClient['mergePatch']>) {
    const [ref] = args;
    const had = ref.kind === 'Node' && (await this.hasOutOfService(ref.name));
    const out = await super.mergePatch(...args);
    if (had && !(await this.hasOutOfService(ref.name))) this.untainted.push(ref.name);
    return out;
  }
  async hasOutOfService(node: string): Promise<boolean> {
    const n = await this.get({ apiVersion: 'v1', kind: 'Node', name: node });
    return n !== null && taintsOf(n).some((t) => t.key === OUT_OF_SERVICE_TAINT.key);
  }
}

test("the leader's reconciles keep a lost robot's taint on: a robot still gone is never untainted and marked again", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-node-loss-'));
  writeFileSync(join(dir, 'site.yaml'), 'id: loss\n');
  const cluster = new TaintLog();
  // A reconcile every 100 ms: many of them while the robot is gone.
  const { net, agents } = await k3sSite(['k1', 'k2', 'k3'], dir, cluster, {
    ...fastLifecycle,
    reconcileEveryMs: 100,
  });
  try {
    await Promise.all(agents.map((a) => a.start()));
    await until(() => agents.every((a) => a.ready()), 'a site formed');
    const leader = agents.find((a) => a.role() === 'leader')!;
    const victim = agents.find((a) => a !== leader)!.status().node;
    await cluster.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: victim }, spec: {} });

    net.loss = (from, to) => (from === victim || to === victim ? 1 : 0);
    await until(() => cluster.hasOutOfService(victim), `${victim} tainted out-of-service`);
    // The leader reconciles several times while the robot stays gone.
    const before = cluster.namespaceApplies;
    await until(() => cluster.namespaceApplies >= before + 5, 'five reconciles');
    assert.equal(leader.role(), 'leader', 'the same leader held the site throughout');
    assert.equal(await cluster.hasOutOfService(victim), true);
    assert.deepEqual(cluster.untainted, [], 'no write took the taint off while the robot was gone');

    // Back: the taint goes, by markNodeReturned.
    net.loss = () => 0;
    await until(async () => !(await cluster.hasOutOfService(victim)), `${victim} untainted on return`);
    assert.deepEqual(cluster.untainted, [victim]);
  } finally {
    for (const a of agents) await a.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a broken installed spec fails the leader's site apply, naming the file, and is read again at the next try", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-broken-spec-'));
  const file = join(dir, 'site.yaml');
  writeFileSync(file, 'id: Not A Site Id\n');
  const cluster = new InMemoryObjectClient();
  const { agents } = await k3sSite(['k1'], dir, cluster);
  const [agent] = agents as [Agent];
  try {
    await agent.start();
    await until(() => agent.status().lastErrors.some((e) => e.message.includes(file)), 'the apply failed');
    // The server serves, but no site is applied on it: status says so.
    assert.equal(agent.ready(), false);
    assert.equal(agent.status().controlPlane.siteAppliedEpoch, null);
    assert.equal(await cluster.get({ apiVersion: 'v1', kind: 'Namespace', name: 'site-loss' }), null);
    writeFileSync(file, 'id: loss\n');
    await until(() => agent.ready(), 'the site applied once the file is fixed');
    const st = agent.status();
    assert.equal(st.controlPlane.siteAppliedEpoch, st.controlPlane.server?.epoch);
    assert.notEqual(await cluster.get({ apiVersion: 'v1', kind: 'Namespace', name: 'site-loss' }), null);
  } finally {
    await agent.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});
