import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino, type Logger } from 'pino';
import { Agent } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/testing/in-memory.ts';
import type { ControlPlaneRuntime, SiteView, SnapshotRecord } from './control-plane/runtime.ts';
import { WitnessRuntime } from './control-plane/witness.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { StateStore } from './persistence/state-store.ts';
import { startStatusServer } from './status-server.ts';
import { InMemoryNetwork } from './transport/in-memory.ts';

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

/** makeSite: every name votes; `witnesses` (listed in names too) vote but never lead. */
function makeSite(
  names: string[],
  o: {
    witnesses?: string[];
    makeRuntime?: (id: string) => ControlPlaneRuntime;
    reconcileEveryMs?: number;
    log?: (id: string) => Logger;
    replicaSync?: { idleMs: number; retryMs: number };
  } = {},
) {
  const witnesses = o.witnesses ?? [];
  const makeRuntime =
    o.makeRuntime ?? ((id: string): ControlPlaneRuntime => new InMemoryControlPlane(id, { delayMs: 5 }));
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-agent-'));
  const net = new InMemoryNetwork();
  const bus = new InMemoryDiscoveryBus();
  const discoveries: InMemoryDiscovery[] = [];
  const agents = names.map((id, i) => {
    const witness = witnesses.includes(id);
    const config = validateAgentConfig({
      site: { id: 'lab' },
      node: { id, serverCapable: !witness },
      voters: names.filter((n) => !witnesses.includes(n)),
      witnesses,
      profile: 'test',
      stateDir: join(dir, id),
      membership: { suspectAfterMs: 100, deadAfterMs: 300 },
      controlPlane: { runtime: witness ? 'none' : 'memory' },
    });
    const transport = net.connect(id);
    const discovery = new InMemoryDiscovery(
      bus,
      {
        siteId: 'lab',
        nodeId: id,
        agentVersion: '0.1.0',
        role: 'starting',
        term: 0,
        port: 7946,
        serverCapable: true,
      },
      { addresses: [`10.0.0.${i + 1}`] },
    );
    discoveries.push(discovery);
    const runtime = witness ? new WitnessRuntime() : makeRuntime(id);
    return new Agent({
      config,
      transport,
      discovery,
      runtime,
      store: new StateStore(config.stateDir),
      log: o.log?.(id) ?? pino({ level: 'silent' }),
      lifecycleTiming: {
        ...fastLifecycle,
        reconcileEveryMs: o.reconcileEveryMs ?? fastLifecycle.reconcileEveryMs,
      },
      seed: i + 1,
      ...(o.replicaSync ? { replicaSync: o.replicaSync } : {}),
    });
  });
  return {
    agents,
    discoveries,
    net,
    dir,
    cleanup: async () => {
      for (const a of agents) await a.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('three agents elect one leader that serves; the others join it as workers', async () => {
  const site = makeSite(['a1', 'a2', 'a3']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const leaders = site.agents.filter((a) => a.role() === 'leader');
    assert.equal(leaders.length, 1);
    const leader = leaders[0]!;
    const st = leader.status();
    assert.equal(st.lifecycle, 'leading.serving');
    assert.equal(st.controlPlane.server?.state, 'serving');
    for (const a of site.agents.filter((x) => x !== leader)) {
      assert.equal(a.status().lifecycle, 'following.ready');
      assert.equal(a.status().controlPlane.worker?.leader, leader.nodeId);
    }
  } finally {
    await site.cleanup();
  }
});

test('when the leader goes silent, the others elect a new one, which serves; workers rejoin it', async () => {
  const site = makeSite(['b1', 'b2', 'b3']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const old = site.agents.find((a) => a.role() === 'leader')!;
    const oldTerm = old.status().term;
    // Power loss as the network sees it: nothing from or to the old leader arrives any more.
    site.net.loss = (from, to) => (from === old.nodeId || to === old.nodeId ? 1 : 0);
    const rest = site.agents.filter((a) => a !== old);
    await until(
      () =>
        rest.some((a) => a.role() === 'leader' && a.status().term > oldTerm) && rest.every((a) => a.ready()),
    );
    const fresh = rest.find((a) => a.role() === 'leader')!;
    assert.equal(rest.find((a) => a !== fresh)!.status().controlPlane.worker?.leader, fresh.nodeId);
    // The cut-off old leader stepped down (CheckQuorum) and stopped its server.
    await until(() => old.role() !== 'leader' && old.status().controlPlane.server === null);
  } finally {
    await site.cleanup();
  }
});

test('a clean stop of the leader hands leadership over first', async () => {
  const site = makeSite(['c1', 'c2', 'c3']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const old = site.agents.find((a) => a.role() === 'leader')!;
    await old.stop();
    const rest = site.agents.filter((a) => a !== old);
    await until(() => rest.some((a) => a.role() === 'leader'), 1000);
  } finally {
    await site.cleanup();
  }
});

test('the status endpoint serves health, readiness, status JSON and metrics', async () => {
  const site = makeSite(['d1']);
  try {
    const a = site.agents[0]!;
    await a.start();
    const srv = await startStatusServer(a, '127.0.0.1:0');
    try {
      const base = `http://127.0.0.1:${srv.port}`;
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200);
      // One Date header, an HTTP date (the agent writes it: agent/wall-clock.ts httpDate).
      assert.match(
        health.headers.get('date') ?? '',
        /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/,
      );
      assert.ok(Math.abs(Date.parse(health.headers.get('date')!) - Date.now()) < 60_000);
      await until(() => a.ready());
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      const st = (await (await fetch(`${base}/status`)).json()) as { node: string; role: string };
      assert.equal(st.node, 'd1');
      assert.equal(st.role, 'leader');
      const metrics = await (await fetch(`${base}/metrics`)).text();
      assert.match(metrics, /edgectl_term 1/);
      assert.match(metrics, /edgectl_elections_total\{result="won"\} 1/);
      assert.match(metrics, /edgectl_role\{role="leader"\} 1/);
      // The election's timers fired (boot timeout, heartbeats) and each measured its lateness.
      const fired = Number(/^edgectl_timer_lateness_seconds_count (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(fired > 0, `timer lateness count ${fired}`);
      assert.equal((await fetch(`${base}/nope`)).status, 404);
    } finally {
      await srv.close();
    }
  } finally {
    await site.cleanup();
  }
});

/** A runtime that takes (pretend) snapshots and keeps the view the agent gives it. */
class SnapshottingRuntime extends InMemoryControlPlane {
  view: SiteView | null = null;
  private readonly robot: string;
  taken = 0;
  constructor(robot: string) {
    super(robot, { delayMs: 5 });
    this.robot = robot;
  }
  setSiteView(view: SiteView): void {
    this.view = view;
  }
  async snapshot(epoch: number): Promise<SnapshotRecord> {
    return {
      name: `e${epoch}-${this.robot}-${++this.taken}`,
      epoch,
      from: this.robot,
      sha256: 'a'.repeat(64),
      size: 4,
      createdAt: '2026-11-22T09:00:00.000Z',
    };
  }
  async shipSnapshot(): Promise<string[]> {
    return [];
  }
}

test('the runtime sees the election: who leads which term, and the snapshot records the site log committed', async () => {
  const runtimes = new Map<string, SnapshottingRuntime>();
  const site = makeSite(['a1', 'a2', 'a3'], {
    makeRuntime: (id) => {
      const rt = new SnapshottingRuntime(id);
      runtimes.set(id, rt);
      return rt;
    },
  });
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    // The serving leader snapshots at once and proposes the record; every robot sees it committed.
    await until(() => [...runtimes.values()].every((rt) => (rt.view?.committedSnapshots().length ?? 0) > 0));
    const firsts = site.agents.map((a) => {
      const view = runtimes.get(a.nodeId)!.view!;
      // Read together, with no await between: on a loaded machine the site may elect again later.
      const st = a.status();
      assert.deepEqual(view.leadership(), { term: st.term, leader: st.leader });
      return view.committedSnapshots()[0]!;
    });
    // The first committed record is the first snapshot of the leader of its epoch, the same everywhere.
    assert.equal(firsts[0]!.name, `e${firsts[0]!.epoch}-${firsts[0]!.from}-1`);
    for (const f of firsts) assert.deepEqual(f, firsts[0]);
  } finally {
    await site.cleanup();
  }
});

test('a serving leader snapshots once per schedule, not again at each reconcile of its site', async () => {
  const runtimes = new Map<string, SnapshottingRuntime>();
  const reconciles = new Map<string, number>();
  const site = makeSite(['a1'], {
    makeRuntime: (id) => {
      const rt = new SnapshottingRuntime(id);
      runtimes.set(id, rt);
      return rt;
    },
    // The test profile's snapshot interval is far longer than the test; a reconcile every 50 ms.
    reconcileEveryMs: 50,
    log: (id) =>
      pino(
        { level: 'info' },
        {
          write: (line: string) => {
            if (line.includes('lifecycle leading.serving -> leading.applyingSite'))
              reconciles.set(id, (reconciles.get(id) ?? 0) + 1);
          },
        },
      ),
  });
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    await until(() => (reconciles.get('a1') ?? 0) >= 5);
    await until(() => site.agents[0]!.status().lifecycle === 'leading.serving');
    assert.equal(runtimes.get('a1')!.taken, 1, 'one snapshot: the one taken when it began to serve');
  } finally {
    await site.cleanup();
  }
});

/** A runtime that records the voters of each replica check, and fails the ones told to. */
class ReplicatingRuntime extends InMemoryControlPlane {
  readonly checks: string[][] = [];
  failNext = 0;
  async syncReplicas(_epoch: number, voters: readonly { id: string }[]): Promise<void> {
    this.checks.push(voters.map((v) => v.id));
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('member list failed');
    }
  }
}

test('a serving leader checks its standby replica when a voter dies or comes back, and not on a short timer while idle', async () => {
  const runtimes = new Map<string, ReplicatingRuntime>();
  const site = makeSite(['a1', 'a2', 'a3'], {
    makeRuntime: (id) => {
      const rt = new ReplicatingRuntime(id, { delayMs: 5 });
      runtimes.set(id, rt);
      return rt;
    },
    // Idle checks far apart (longer than the test); a failed check is retried after 100 ms.
    replicaSync: { idleMs: 60_000, retryMs: 100 },
  });
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const leader = site.agents.find((a) => a.role() === 'leader')!;
    const rt = runtimes.get(leader.nodeId)!;
    const others = site.agents.filter((a) => a !== leader).map((a) => a.nodeId);
    await until(() => rt.checks.some((c) => c.length === 2));
    // Idle: nothing changes, so nothing is checked for longer than a short timer's period would allow.
    const settled = rt.checks.length;
    await new Promise((r) => setTimeout(r, 2200));
    assert.equal(rt.checks.length, settled, 'no check while nothing changed');

    // A voter goes silent: once it is dead, the leader checks at once, without it.
    const gone = others[0]!;
    site.net.loss = (from, to) => (from === gone || to === gone ? 1 : 0);
    await until(() => rt.checks.slice(settled).some((c) => !c.includes(gone)), 3000);

    // A failed check is retried soon.
    const beforeFail = rt.checks.length;
    rt.failNext = 1;
    site.net.loss = () => 0;
    await until(() => rt.checks.length >= beforeFail + 2, 3000);
    // It came back: the retried check includes it.
    assert.deepEqual([...rt.checks.at(-1)!].sort(), [...others].sort());
  } finally {
    await site.cleanup();
  }
});

test('a follower shows the followers it does not hear as not heard, never dead; the leader hears all', async () => {
  const site = makeSite(['a1', 'a2', 'a3']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    // Sample for well past deadAfterMs (300 ms here): a follower stops hearing the other follower
    // after the vote. Whatever the timing, it must never call it suspect or dead; only the leader
    // hears everyone, and its view is the one that says alive or dead.
    let notHeard = 0;
    const end = performance.now() + 1000;
    while (performance.now() < end) {
      for (const f of site.agents.filter((a) => a.role() !== 'leader')) {
        const st = f.status();
        for (const m of st.members) {
          if (m.id === st.leader) continue;
          assert.notEqual(m.state, 'dead', `${f.nodeId}'s view of ${m.id}`);
          assert.notEqual(m.state, 'suspect', `${f.nodeId}'s view of ${m.id}`);
          if (m.state === 'not-heard') notHeard++;
        }
        const metrics = await f.metrics.registry.metrics();
        assert.match(metrics, /edgectl_members\{state="dead"\} 0/);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(notHeard > 0, 'followers stopped hearing each other and said so');
    await until(() => {
      const leader = site.agents.find((a) => a.role() === 'leader');
      return !!leader && leader.status().members.every((m) => m.state === 'alive');
    });
  } finally {
    await site.cleanup();
  }
});

test('two robots and a witness: the leader goes silent and the other robot takes over; the witness runs nothing', async () => {
  const site = makeSite(['w2a', 'w2b', 'wit'], { witnesses: ['wit'] });
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    const [a, b, w] = site.agents as [Agent, Agent, Agent];
    await until(() => a.ready() && b.ready() && w.status().leader !== null);
    assert.equal(w.role(), 'follower');
    assert.equal(w.status().lifecycle, 'witnessing');
    assert.equal(w.status().witness, true);
    assert.deepEqual(w.status().controlPlane.worker, null);
    const old = a.role() === 'leader' ? a : b;
    const other = old === a ? b : a;
    site.net.loss = (from, to) => (from === old.nodeId || to === old.nodeId ? 1 : 0);
    await until(() => other.role() === 'leader' && other.ready());
    assert.equal(w.status().leader, other.nodeId);
    assert.equal(w.role(), 'follower', 'the witness never leads');
    assert.equal(other.status().quorum.ok, true);
  } finally {
    await site.cleanup();
  }
});

test('a two-voter site without a witness says so when it loses its leader: no quorum, no leader, server unreachable', async () => {
  const site = makeSite(['nq1', 'nq2']);
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const old = site.agents.find((a) => a.role() === 'leader')!;
    const survivor = site.agents.find((a) => a !== old)!;
    assert.equal(survivor.status().quorum.ok, true);
    site.net.loss = (from, to) => (from === old.nodeId || to === old.nodeId ? 1 : 0);
    await until(() => survivor.status().quorum.noQuorumSince !== null);
    const st = survivor.status();
    assert.equal(st.leader, null, 'not the leader it last heard');
    assert.deepEqual([st.quorum.ok, st.quorum.reachable, st.quorum.voters], [false, 1, 2]);
    assert.equal(st.controlPlane.worker?.state, 'server unreachable');
    assert.notEqual(survivor.role(), 'leader');
  } finally {
    await site.cleanup();
  }
});

test("/status and /metrics show discovery's counters, whatever they are", async () => {
  const site = makeSite(['a1']);
  try {
    Object.assign(site.discoveries[0]!, { stats: () => ({ badTxt: 3, malformed: 1, someNewDrop: 2 }) });
    const [a] = site.agents;
    await a!.start();
    assert.deepEqual(a!.status().discovery, {
      badTxt: 3,
      malformed: 1,
      someNewDrop: 2,
      ignoredUnknownRobots: 0,
      ignoredOutsideSubnets: 0,
    });
    const metrics = await a!.metrics.registry.metrics();
    assert.match(metrics, /edgectl_discovery_events_total\{event="badTxt"\} 3/);
    assert.match(metrics, /edgectl_discovery_events_total\{event="someNewDrop"\} 2/);
    for (const m of a!.status().members) assert.ok(m.lastHeardAgoMs === null || m.lastHeardAgoMs >= 0);
  } finally {
    await site.cleanup();
  }
});
