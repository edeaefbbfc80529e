import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Agent } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/in-memory.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { StateStore } from './persistence/state-store.ts';
import { startStatusServer } from './status-server.ts';
import { InMemoryNetwork } from './transport/in-memory.ts';
import { leaderSiteApplier } from './site/leader-site.ts';

const silent = pino({ level: 'silent' });

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

function makeSite(names: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-agent-'));
  const net = new InMemoryNetwork();
  const bus = new InMemoryDiscoveryBus();
  const agents = names.map((id, i) => {
    const config = validateAgentConfig({
      site: { id: 'lab' },
      node: { id, serverCapable: true },
      voters: names,
      profile: 'test',
      stateDir: join(dir, id),
      membership: { suspectAfterMs: 100, deadAfterMs: 300 },
      controlPlane: { runtime: 'memory' },
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
    const runtime = new InMemoryControlPlane(id, { delayMs: 5 });
    return new Agent({
      config,
      transport,
      discovery,
      runtime,
      site: leaderSiteApplier({ spec: config.siteSpec, log: silent, server: () => runtime.apiServer() }),
      store: new StateStore(config.stateDir),
      log: pino({ level: 'silent' }),
      lifecycleTiming: fastLifecycle,
      seed: i + 1,
    });
  });
  return {
    agents,
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
