/**
 * One history across a failover, as root (docs/k3s.md "One history"): the leader's link to its
 * standby is cut while a client goes on writing through the leader, so the leader hands out
 * resourceVersions the standby's replica never receives; then the leader loses power. The new
 * leader restores an older revision, moves it forward and marks everything before compacted: its
 * first write is newer than every resourceVersion the old leader handed out, and a list or a watch
 * from any resourceVersion of the old history gets 410 Gone (clients relist) instead of old data.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { converged } from '../../lab/analysis.ts';
import { applyLabFault, labDown, labUp, type LabObservation, type LabState } from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';
import { labApi, lostWrites, presentWrites, Writer } from '../../lab/rpo.ts';
import type { KubeHttp } from '../../lab/runtime/kube-http.ts';
import { assertNoLeftovers, untilLab } from './lab-wait.ts';

const SITE = 'it-history';
const PREFIX = 'eoh-';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

after(() => {
  labDown(SITE, { prefix: PREFIX });
  assertNoLeftovers(SITE, PREFIX);
});

const details = (o: LabObservation, name: string) =>
  o.robots.find((r) => r.name === name)?.status?.controlPlane.details ?? {};
const until = (state: LabState, what: string, pred: (o: LabObservation) => boolean) =>
  untilLab(state, what, pred, { detail: (s) => s?.controlPlane.details?.['replica'] });

/** The HTTP status a list or a watch from `rv` ends in: a watch reports expiry as an ERROR event. */
async function statusFrom(api: KubeHttp, path: string): Promise<number> {
  const r = await api.call('GET', path);
  if (r.status !== 200 || !path.includes('watch=1')) return r.status;
  const first =
    typeof r.body === 'string' ? (JSON.parse(r.body.split('\n')[0]!) as unknown) : (r.body as unknown);
  const e = first as { type?: string; object?: { code?: number } } | null;
  return e?.type === 'ERROR' ? (e.object?.code ?? 0) : 200;
}

test('after a takeover, resourceVersions only move forward and the old history reads as expired', async (t) => {
  requireRoot('the lab one-history test');
  const state = await labUp({
    site: SITE,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: PREFIX,
    subnet: '10.77.28',
    deadAfterMs: 3000,
  });
  const formed = await until(
    state,
    'the site to form with a standby replica',
    (o) => converged(o) && details(o, o.leader!)['standby'] != null,
  );
  const leader = formed.leader!;
  const standby = String(details(formed, leader)['standby']);
  await until(state, `${standby}'s replica of this epoch`, (o) =>
    String(details(o, standby)['replica'] ?? '').startsWith(`e${o.term}@`),
  );
  const ns = `site-${SITE}`;
  const writer = new Writer(labApi(state, leader), ns, 'h', 100);
  await sleep(1500);
  // The standby stops receiving the leader's writes; the client still reaches the leader.
  await applyLabFault(state, { kind: 'cut', a: leader, b: standby });
  await sleep(2000);
  const cutAt = Date.now();
  await applyLabFault(state, { kind: 'kill', node: leader });
  await writer.stop();
  await applyLabFault(state, { kind: 'heal' });

  const reformed = await until(state, 'a new leader', (o) => converged(o) && o.leader !== leader);
  const next = reformed.leader!;
  const d = details(reformed, next);
  assert.notEqual(d['restoredFrom'], null, `${next} restored a replica or a snapshot`);
  const m = /^(\d+)->(\d+)$/.exec(String(d['revisionBump']));
  assert.ok(m, `the restored datastore's revision moved forward: ${String(d['revisionBump'])}`);
  const [restored, bumpedTo] = [Number(m[1]), Number(m[2])];

  const api = labApi(state, next, 10_000);
  const acked = writer.acked.map((w) => Number(w.resourceVersion));
  const newestAcked = Math.max(...acked);
  const loss = lostWrites(writer.acked, await presentWrites(api, ns, 'h'), cutAt);
  // The premise: the old leader was ahead of what the new one restored.
  assert.ok(loss.lost.length > 0, 'the replica missed writes the old leader acknowledged');
  assert.ok(newestAcked > restored, `old leader at ${newestAcked}, restored ${restored}`);
  assert.ok(bumpedTo > newestAcked);

  const created = (await api.ok('POST', `/api/v1/namespaces/${ns}/configmaps`, {
    metadata: { name: 'after-takeover' },
  })) as { metadata: { resourceVersion: string } };
  const first = Number(created.metadata.resourceVersion);
  assert.ok(
    acked.every((rv) => rv < first),
    `every resourceVersion the old leader handed out (up to ${newestAcked}) is below the new leader's first write (${first})`,
  );

  t.diagnostic(
    `${next} restored revision ${restored} (${String(d['restoredFrom'])}), moved to ${bumpedTo}; ` +
      `${leader} had handed out up to ${newestAcked}, ${loss.lost.length} of ${loss.acked} acknowledged writes ` +
      `missed by the replica; first write after the takeover: ${first}`,
  );
  // An old resourceVersion: one the replica holds, and one only the dead leader ever had.
  const replicated = Math.min(...acked);
  const unreplicated = Number(loss.lost.at(-1)!.resourceVersion);
  for (const rv of [replicated, unreplicated]) {
    const list = `/api/v1/namespaces/${ns}/configmaps?resourceVersion=${rv}&resourceVersionMatch=Exact`;
    assert.equal(await statusFrom(api, list), 410, `a list at ${rv} is expired`);
    const watch = `/api/v1/namespaces/${ns}/configmaps?watch=1&resourceVersion=${rv}&timeoutSeconds=2`;
    assert.equal(await statusFrom(api, watch), 410, `a watch from ${rv} is expired`);
  }
  // A client that relists goes on from the new history.
  const relist = (await api.ok('GET', `/api/v1/namespaces/${ns}/configmaps`)) as {
    metadata: { resourceVersion: string };
  };
  assert.ok(Number(relist.metadata.resourceVersion) >= first);
});
