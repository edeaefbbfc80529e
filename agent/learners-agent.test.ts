/**
 * The site's membership through the real Agent, over the in-memory transport and discovery: the
 * leader heartbeats the workers its site names and no robot that only an advertisement names, and
 * a membership committed in the site log (edgectl robot add|remove) changes its learners at once.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import type { Message } from '../statecharts/messages.ts';
import { Agent, type MembersView } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/testing/in-memory.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus, type Advertisement } from './discovery/discovery.ts';
import { signMembers, signSiteApply } from './operator-auth.ts';
import { StateStore } from './persistence/state-store.ts';
import { operatorKey } from './site-key.ts';
import { membersDigest } from './site/members.ts';
import { startStatusServer } from './status-server.ts';
import { InMemoryNetwork, type InMemoryTransport } from './transport/in-memory.ts';

const SITE = 'members';
const KEY = operatorKey(Buffer.alloc(32, 9), 1);
const VOTERS = ['v1', 'v2', 'v3'];

const fastLifecycle = {
  discoveryWindowMs: 50,
  serverStartTimeoutMs: 2000,
  siteApplyTimeoutMs: 2000,
  joinTimeoutMs: 2000,
  reconcileEveryMs: 60_000,
  retryMinMs: 20,
  retryMaxMs: 200,
  joinRetryMaxMs: 200,
};

const advert = (nodeId: string, serverCapable = true): Advertisement => ({
  siteId: SITE,
  nodeId,
  agentVersion: '0.1.0',
  role: 'starting',
  term: 0,
  port: 7946,
  serverCapable,
});

/** A site of three voters and the given robots; `workers` is what every config names. */
function makeSite(robots: readonly string[], workers: readonly string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-members-'));
  const net = new InMemoryNetwork();
  const bus = new InMemoryDiscoveryBus();
  const sent = new Map<string, number>();
  const deliver = net.deliver.bind(net);
  net.deliver = (msg: Message, from) => {
    sent.set(msg.to, (sent.get(msg.to) ?? 0) + 1);
    deliver(msg, from);
  };
  const transports = new Map<string, InMemoryTransport>();
  const agents = [...VOTERS, ...robots].map((id, i) => {
    const voter = VOTERS.includes(id);
    const config = validateAgentConfig({
      site: { id: SITE },
      node: { id, serverCapable: voter },
      voters: VOTERS,
      workers,
      profile: 'lab',
      stateDir: join(dir, id),
      membership: { suspectAfterMs: 500, deadAfterMs: 1500 },
      controlPlane: { runtime: 'memory' },
    });
    const transport = net.connect(id);
    transports.set(id, transport);
    return new Agent({
      config,
      transport,
      discovery: new InMemoryDiscovery(bus, advert(id, voter), { addresses: [`10.0.0.${i + 1}`] }),
      runtime: new InMemoryControlPlane(id, { delayMs: 5 }),
      store: new StateStore(config.stateDir),
      log: pino({ level: 'silent' }),
      lifecycleTiming: fastLifecycle,
      seed: i + 1,
      ...(voter ? { operatorKeys: () => [KEY] } : {}),
    });
  });
  const forged: InMemoryDiscovery[] = [];
  return {
    agents,
    sent,
    transports,
    /** Advertise `n` made-up robots of the site, every one at the victim address. */
    forge: async (n: number) => {
      for (let i = 0; i < n; i++) {
        const d = new InMemoryDiscovery(bus, advert(`fake-${i}`, false), { addresses: ['10.0.0.99'] });
        forged.push(d);
        await d.start();
      }
    },
    leader: () => agents.find((a) => a.role() === 'leader'),
    cleanup: async () => {
      for (const d of forged) await d.close();
      for (const a of agents) await a.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until(cond: () => boolean, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const toFakes = (sent: Map<string, number>) =>
  [...sent].filter(([to]) => to.startsWith('fake-')).reduce((n, [, k]) => n + k, 0);

function membersRequest(workers: string[], baseVersion: number, key: Uint8Array = KEY) {
  const claim = { site: SITE, baseVersion, digest: membersDigest(workers) };
  return { site: SITE, baseVersion, workers, mac: signMembers(key, claim) };
}

test('advertised robots the site does not name get nothing; the named worker is its learner', async () => {
  const site = makeSite(['w1'], ['w1']);
  try {
    await site.forge(50);
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const leader = site.leader()!;
    await sleep(1000);
    assert.deepEqual(leader.status().learners?.learners, ['w1']);
    assert.equal(leader.status().learners?.membersVersion, null, "the config's membership stands in");
    assert.equal(toFakes(site.sent), 0, 'no datagram to a made-up robot');
    assert.ok((site.sent.get('w1') ?? 0) > 0, 'the named worker is heartbeated');
    for (const a of site.agents.filter((x) => VOTERS.includes(x.nodeId))) {
      const d = a.status().discovery;
      assert.equal(d.ignoredUnknownRobots, 50, `${a.nodeId} counts each made-up robot once`);
      assert.equal(site.transports.get(a.nodeId)!.peerAddress('fake-0'), undefined, 'no address kept');
    }
    assert.match(
      await leader.metrics.registry.metrics(),
      /edgectl_discovery_events_total\{event="ignoredUnknownRobots"\} 50/,
    );
  } finally {
    await site.cleanup();
  }
});

test('robot add and remove through the site log change the learners of a running site', async () => {
  // w2 is installed later (robot add): no config names it yet.
  const site = makeSite(['w1', 'w2'], ['w1']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.filter((a) => a.nodeId !== 'w2').every((a) => a.ready()));
    const leader = site.leader()!;
    await sleep(500);
    assert.deepEqual(leader.status().learners?.learners, ['w1']);
    assert.equal(site.sent.get('w2') ?? 0, 0, 'a robot no one named yet is not heartbeated');

    // Refused: a tag of another key, of a site apply, or against a base that moved.
    const other = operatorKey(Buffer.alloc(32, 1), 1);
    await assert.rejects(leader.applyMembersRequest(membersRequest(['w1', 'w2'], 0, other)), {
      code: 'EDGE_MEMBERS_UNAUTHENTICATED',
    });
    const digest = membersDigest(['w1', 'w2']);
    await assert.rejects(
      leader.applyMembersRequest({
        site: SITE,
        baseVersion: 0,
        workers: ['w1', 'w2'],
        mac: signSiteApply(KEY, { site: SITE, baseVersion: 0, digest }),
      }),
      { code: 'EDGE_MEMBERS_UNAUTHENTICATED' },
    );
    await assert.rejects(leader.applyMembersRequest(membersRequest(['w1', 'v2'], 0)), {
      code: 'EDGE_MEMBERS_INVALID',
    });

    const added = await leader.applyMembersRequest(membersRequest(['w1', 'w2'], 0));
    assert.equal(added.kind, 'committed');
    await until(() => site.agents.every((a) => a.ready()));
    await until(() => (site.sent.get('w2') ?? 0) > 0);
    for (const a of site.agents.filter((x) => VOTERS.includes(x.nodeId)))
      await until(() => a.status().learners?.membersVersion === 1);
    assert.deepEqual(leader.status().learners?.learners, ['w1', 'w2']);
    await assert.rejects(leader.applyMembersRequest(membersRequest(['w1'], 0)), {
      code: 'EDGE_MEMBERS_CONFLICT',
    });
    assert.equal((await leader.applyMembersRequest(membersRequest(['w2', 'w1'], 1))).kind, 'unchanged');

    const removed = await leader.applyMembersRequest(membersRequest(['w2'], 1));
    assert.equal(removed.kind, 'committed');
    await until(() => leader.status().learners?.learners.join() === 'w2');
    const before = site.sent.get('w1') ?? 0;
    await sleep(1000);
    assert.equal(site.sent.get('w1') ?? 0, before, 'a removed robot is no longer heartbeated');

    // A later leader follows the committed membership, not its config.
    const next = site.agents.find((a) => VOTERS.includes(a.nodeId) && a !== leader)!;
    const view = await next.membersView();
    assert.deepEqual(view.committed?.workers, ['w2']);
    assert.deepEqual(view.config, ['w1']);
  } finally {
    await site.cleanup();
  }
});

test('the status endpoint: GET and POST /site/members, and what it refuses', async () => {
  const site = makeSite(['w1'], ['w1']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const leader = site.leader()!;
    const follower = site.agents.find((a) => VOTERS.includes(a.nodeId) && a !== leader)!;
    const servers = await Promise.all([leader, follower].map((a) => startStatusServer(a, '127.0.0.1:0')));
    try {
      const [lead, follow] = servers.map((s) => `http://127.0.0.1:${s.port}/site/members`);
      const view = (await (await fetch(lead!)).json()) as MembersView;
      assert.deepEqual([view.leader, view.committed, view.config], [leader.nodeId, null, ['w1']]);
      const post = async (url: string, body: unknown) => {
        const r = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
        return { status: r.status, body: (await r.json()) as { kind?: string; error?: { code: string } } };
      };
      assert.equal((await post(lead!, { site: SITE, workers: 'w1' })).status, 400);
      const forged = { ...membersRequest(['w1', 'ghost'], 0), mac: '0'.repeat(64) };
      const refused = await post(lead!, forged);
      assert.deepEqual([refused.status, refused.body.error?.code], [401, 'EDGE_MEMBERS_UNAUTHENTICATED']);
      const moved = await post(follow!, membersRequest(['w1', 'w2'], 0));
      assert.deepEqual([moved.status, moved.body.kind], [421, 'notLeader']);
      const ok = await post(lead!, membersRequest(['w1', 'w2'], 0));
      assert.deepEqual([ok.status, ok.body.kind], [200, 'committed']);
      const stale = await post(lead!, membersRequest(['w1'], 0));
      assert.deepEqual([stale.status, stale.body.error?.code], [409, 'EDGE_MEMBERS_CONFLICT']);
      // A follower learns the commit with the leader's next Append.
      let after: MembersView | null = null;
      for (let i = 0; i < 100 && after?.committed?.version !== 1; i++) {
        after = (await (await fetch(follow!)).json()) as MembersView;
        await sleep(50);
      }
      assert.deepEqual(after?.committed?.workers, ['w1', 'w2']);
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  } finally {
    await site.cleanup();
  }
});
