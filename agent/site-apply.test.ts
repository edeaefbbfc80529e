/**
 * The site log as the source of truth, through the real Agent, its status endpoint and the real
 * site spec parser, over the in-memory transport and runtime: each robot is installed with a
 * different spec file, and the leader's proposals decide what every later leader applies.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { Agent, type SiteHistoryEntry, type SiteView } from './agent.ts';
import { validateAgentConfig } from './config.ts';
import { InMemoryControlPlane } from './control-plane/testing/in-memory.ts';
import { InMemoryDiscovery, InMemoryDiscoveryBus } from './discovery/discovery.ts';
import { signSiteApply } from './operator-auth.ts';
import { operatorKey as siteOperatorKey } from './site-key.ts';
import { StateStore } from './persistence/state-store.ts';
import { specDigest } from './site/spec-log.ts';
import { canonicalSiteSpec, fileSiteSpecSource } from './site/spec-source.ts';
import { parseSiteSpec } from './site/spec.ts';
import { startStatusServer } from './status-server.ts';
import { InMemoryNetwork } from './transport/in-memory.ts';

const SITE = 'apply';
const SITE_KEY = Buffer.alloc(32, 7);

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

const specYaml = (pods: string) => `id: ${SITE}\nquota:\n  hard:\n    pods: "${pods}"\n`;
const canonical = (pods: string) => canonicalSiteSpec(parseSiteSpec({ id: SITE, quota: { hard: { pods } } }));

function makeSite(names: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-apply-'));
  const net = new InMemoryNetwork();
  const bus = new InMemoryDiscoveryBus();
  const runtimes = new Map<string, InMemoryControlPlane>();
  const agents = names.map((id, i) => {
    const config = validateAgentConfig({
      site: { id: SITE },
      node: { id, serverCapable: true },
      voters: names,
      // The lab profile: the test one's 100 ms timeouts turn a loaded machine's pauses into elections.
      profile: 'lab',
      stateDir: join(dir, id),
      membership: { suspectAfterMs: 500, deadAfterMs: 1500 },
      controlPlane: { runtime: 'memory' },
    });
    // Every robot was installed with a different spec: pods 10, 20, 30.
    const file = join(dir, `${id}-site.yaml`);
    writeFileSync(file, specYaml(String(10 * (i + 1))));
    const discovery = new InMemoryDiscovery(
      bus,
      {
        siteId: SITE,
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
    runtimes.set(id, runtime);
    return new Agent({
      config,
      transport: net.connect(id),
      discovery,
      runtime,
      store: new StateStore(config.stateDir),
      log: pino({ level: 'silent' }),
      lifecycleTiming: fastLifecycle,
      seed: i + 1,
      siteSpecs: fileSiteSpecSource(file),
      operatorKeys: () => [operatorKey(SITE_KEY)],
    });
  });
  return {
    agents,
    runtimes,
    net,
    cleanup: async () => {
      for (const a of agents) await a.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const pods = (text: string | undefined) =>
  text === undefined
    ? undefined
    : (JSON.parse(text) as { quota: { hard: { pods: string } } }).quota.hard.pods;

/** The pods quota of the site's ResourceQuota on a robot's API server, as its leader wrote it. */
async function quotaPods(rt: InMemoryControlPlane): Promise<string | undefined> {
  const quota = await rt.objects?.get({
    apiVersion: 'v1',
    kind: 'ResourceQuota',
    namespace: `site-${SITE}`,
    name: 'site-quota',
  });
  return (quota?.spec as { hard?: Record<string, string> } | undefined)?.hard?.['pods'];
}

/** The operator key of generation 1, as bootstrap installs it on voters. */
const operatorKey = (master: Uint8Array) => siteOperatorKey(master, 1);

function request(spec: string, baseVersion: number, key: Uint8Array = operatorKey(SITE_KEY)) {
  return {
    site: SITE,
    baseVersion,
    spec,
    mac: signSiteApply(key, { site: SITE, baseVersion, digest: specDigest(spec) }),
  };
}

async function post(port: number, body: unknown) {
  const res = await fetch(`http://127.0.0.1:${port}/site/apply`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

test('the first leader commits its installed spec as version 1; every later leader applies the log, not its file', async () => {
  const site = makeSite(['s1', 's2', 's3']);
  const servers: Awaited<ReturnType<typeof startStatusServer>>[] = [];
  try {
    await Promise.all(site.agents.map((a) => a.start()));
    await until(() => site.agents.every((a) => a.ready()));
    const views = async () => Promise.all(site.agents.map((a) => a.siteView()));
    await until(async () => (await views()).every((v) => v.committed?.version === 1));
    const leader = site.agents.find((a) => a.role() === 'leader')!;
    // Version 1 is the installed spec of the first robot that led: one of 10, 20, 30, the same everywhere.
    const installed = pods((await leader.siteView()).committed?.text)!;
    assert.ok(['10', '20', '30'].includes(installed), installed);
    for (const v of await views()) assert.equal(pods(v.committed?.text), installed);
    // The leader applied that spec: its installed one (version 0) if it seeded it, else version 1.
    await until(async () => (await leader.siteView()).applied !== null);
    assert.equal((await leader.siteView()).applied?.digest, specDigest(canonical(installed)));
    assert.equal(await quotaPods(site.runtimes.get(leader.nodeId)!), installed);

    for (const a of site.agents) servers.push(await startStatusServer(a, '127.0.0.1:0'));
    const portOf = (a: Agent) => servers[site.agents.indexOf(a)]!.port;
    const follower = site.agents.find((a) => a !== leader)!;

    // A follower names the leader and where it is (its transport address; the in-memory one is its id).
    const redirected = await post(portOf(follower), request(canonical('50'), 1));
    assert.equal(redirected.status, 421, JSON.stringify(redirected.body));
    assert.deepEqual(redirected.body, {
      kind: 'notLeader',
      leader: leader.nodeId,
      leaderAddress: leader.nodeId,
    });
    // Refusals: a wrong key, a stale base version, an invalid spec, another site's spec.
    const forged = await post(portOf(leader), request(canonical('50'), 1, operatorKey(Buffer.alloc(32, 8))));
    assert.equal(forged.status, 401);
    assert.equal((forged.body.error as { code: string }).code, 'EDGE_SITE_APPLY_UNAUTHENTICATED');
    const stale = await post(portOf(leader), request(canonical('50'), 0));
    assert.equal(stale.status, 409);
    assert.equal((stale.body.error as { code: string }).code, 'EDGE_SITE_SPEC_CONFLICT');
    const invalid = await post(
      portOf(leader),
      request(JSON.stringify({ id: SITE, quota: { hard: { pods: 'lots' } } }), 1),
    );
    assert.equal(invalid.status, 422);
    assert.match(
      ((invalid.body.error as { problems: string[] }).problems ?? []).join('\n'),
      /quota\.hard\.pods: must be a Kubernetes quantity/,
    );
    const other = await post(portOf(leader), request(JSON.stringify({ id: 'elsewhere' }), 1));
    assert.equal(other.status, 422);
    assert.equal(
      (await views()).every((v) => v.committed?.version === 1),
      true,
      'no refused request changed the log',
    );

    // The leader commits version 2 and applies it at once.
    const ok = await post(portOf(leader), request(canonical('50'), 1));
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.kind, 'committed');
    assert.equal(ok.body.version, 2);
    assert.equal(ok.body.digest, specDigest(canonical('50')));
    await until(async () => (await leader.siteView()).applied?.version === 2);
    assert.equal(await quotaPods(site.runtimes.get(leader.nodeId)!), '50');
    // The same spec again changes nothing.
    const same = await post(portOf(leader), request(canonical('50'), 2));
    assert.deepEqual(same.body, { kind: 'unchanged', version: 2, digest: specDigest(canonical('50')) });

    // The history names what changed.
    const history = (await (await fetch(`http://127.0.0.1:${portOf(follower)}/site/history`)).json()) as {
      versions: SiteHistoryEntry[];
    };
    await until(async () => (await follower.siteView()).committed?.version === 2);
    const h = await follower.siteHistory();
    assert.deepEqual(
      h.map((v) => [v.version, v.changes]),
      [
        [1, ['first version in the site log']],
        [2, [`quota.hard.pods: "${installed}" → "50"`]],
      ],
    );
    assert.ok(history.versions.length >= 1);
    const view = (await (await fetch(`http://127.0.0.1:${portOf(follower)}/site`)).json()) as SiteView;
    assert.equal(view.leader, leader.nodeId);

    // Power loss of the leader: the new leader applies version 2, not its own file.
    site.net.loss = (from, to) => (from === leader.nodeId || to === leader.nodeId ? 1 : 0);
    const rest = site.agents.filter((a) => a !== leader);
    await until(() => rest.some((a) => a.role() === 'leader' && a.ready()));
    const next = rest.find((a) => a.role() === 'leader')!;
    await until(async () => (await next.siteView()).applied !== null);
    assert.equal((await next.siteView()).applied?.version, 2);
    // What its server holds is version 2's quota, not its own file's.
    assert.equal(await quotaPods(site.runtimes.get(next.nodeId)!), '50');
    assert.notEqual(String(10 * (site.agents.indexOf(next) + 1)), '50');
    assert.ok(site.runtimes.get(next.nodeId)!.journal.some((j) => /^siteServer \d+$/.test(j)));
  } finally {
    for (const s of servers) await s.close();
    await site.cleanup();
  }
});

test('without a leader, a site apply is refused with a clear error', async () => {
  const site = makeSite(['t1', 't2', 't3']);
  const a = site.agents[0]!;
  // Nobody else hears t1: it never learns of a leader.
  site.net.loss = (from, to) => (from === 't1' || to === 't1' ? 1 : 0);
  const srv = await startStatusServer(a, '127.0.0.1:0');
  try {
    await a.start();
    const res = await post(srv.port, request(canonical('50'), 0));
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal((res.body.error as { code: string }).code, 'EDGE_NO_LEADER');
    const bad = await fetch(`http://127.0.0.1:${srv.port}/site/apply`, { method: 'POST', body: '{' });
    assert.equal(bad.status, 400);
  } finally {
    await srv.close();
    await site.cleanup();
  }
});
