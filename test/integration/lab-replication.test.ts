/**
 * Continuous replication in the lab, as root (docs/k3s.md "Replication"): while a client writes a
 * ConfigMap every 100 ms through the leader, the leader loses power. The new leader must take over
 * from its etcd replica, not from the last snapshot, and hold every write the old leader
 * acknowledged; resourceVersions go on from there; the old leader returns as a follower.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { converged } from '../../lab/analysis.ts';
import { applyLabFault, labDown, labUp, type LabObservation, type LabState } from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';
import { assertNoLeftovers, untilLab } from './lab-wait.ts';
import { labApi, lostWrites, presentWrites, Writer } from '../../lab/rpo.ts';
import { runScenario } from '../../lab/runner.ts';
import { parseScenario } from '../../lab/scenario.ts';
import { readFileSync } from 'node:fs';

const SITE = 'it-repl';
const PREFIX = 'elr-';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

after(() => {
  labDown(SITE, { prefix: PREFIX });
  assertNoLeftovers(SITE, PREFIX);
});

const until = (state: LabState, what: string, pred: (o: LabObservation) => boolean, ms?: number) =>
  untilLab(state, what, pred, { ms, detail: (s) => s?.controlPlane.details?.['replica'] });

const replicaOf = (o: LabObservation, name: string) =>
  String(o.robots.find((r) => r.name === name)?.status?.controlPlane.details?.['replica'] ?? '');

test('the leader loses power mid-write: the new leader takes over from its replica with every acknowledged write', async () => {
  requireRoot('the lab replication test');
  const state = await labUp({
    site: SITE,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: PREFIX,
    subnet: '10.77.22',
    deadAfterMs: 3000,
  });
  const formed = await until(state, 'the site to form', converged);
  const leader = formed.leader!;
  const followers = state.robots.map((r) => r.name).filter((n) => n !== leader);
  await until(state, 'a standby replica', (o) => followers.some((f) => /^e\d+@\d+$/.test(replicaOf(o, f))));
  const ns = `site-${SITE}`;
  const writer = new Writer(labApi(state, leader), ns, 'w', 100);
  await sleep(3000);
  const cutAt = Date.now();
  await applyLabFault(state, { kind: 'kill', node: leader });
  await writer.stop();
  assert.ok(writer.acked.length >= 20, `the leader acknowledged ${writer.acked.length} writes`);
  const reformed = await until(state, 'a new leader', (o) => converged(o) && o.leader !== leader);
  const next = reformed.leader!;
  const details = reformed.robots.find((r) => r.name === next)!.status!.controlPlane.details!;
  assert.match(
    String(details['restoredFrom']),
    /^replica e\d+@\d+$/,
    'the new leader took over from its replica',
  );
  const loss = lostWrites(writer.acked, await presentWrites(labApi(state, next, 3000), ns, 'w'), cutAt);
  assert.deepEqual(
    loss.lost.map((w) => w.name),
    [],
    `acknowledged writes lost (${loss.lost.length} of ${loss.acked}, ${loss.windowMs} ms)`,
  );
  // resourceVersions go on from the old leader's: a new write is newer than every acknowledged one.
  const created = (await labApi(state, next, 3000).ok('POST', `/api/v1/namespaces/${ns}/configmaps`, {
    metadata: { name: 'after-failover' },
  })) as { metadata: { resourceVersion: string } };
  const newest = Math.max(...writer.acked.map((w) => Number(w.resourceVersion)));
  assert.ok(
    Number(created.metadata.resourceVersion) > newest,
    `${created.metadata.resourceVersion} > ${newest}`,
  );

  // The old leader returns: it follows, its old epoch's data is not served, and a standby exists again.
  await applyLabFault(state, { kind: 'restart', node: leader });
  const back = await until(
    state,
    `${leader} back as a follower and a standby replica of the new epoch`,
    (o) =>
      converged(o) &&
      o.leader === next &&
      o.robots.every((r) => r.status !== null) &&
      state.robots.some((r) => r.name !== next && replicaOf(o, r.name).startsWith(`e${o.term}@`)),
  );
  assert.equal(back.leader, next);
});

test('the lab scenario leader-loss-no-lost-writes passes: no acknowledged write lost beyond 1 s', async () => {
  requireRoot('the lab replication test');
  const path = new URL('../../lab/scenarios/leader-loss-no-lost-writes.yaml', import.meta.url).pathname;
  const sc = parseScenario(readFileSync(path, 'utf8'), path);
  const report = await runScenario(sc, { site: 'it-nolost', prefix: 'elnl-', subnet: '10.77.26' });
  const e = report.analysis.expectations.find((x) => x.expectation.kind === 'no-lost-writes')!;
  assert.equal(e.ok, true, e.detail);
  assert.match(e.detail, /^0 of \d+ acknowledged writes lost$/);
  assert.equal(
    report.passed,
    true,
    JSON.stringify(report.analysis.expectations.map((x) => [x.expectation.kind, x.ok, x.detail])),
  );
  assert.deepEqual(report.leaks, { netns: [], links: [], nftTables: [], processes: [], cgroups: [] });
});
