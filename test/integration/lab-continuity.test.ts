/**
 * Site continuity across a leader change in the lab, as root: the leader snapshots its
 * etcd every few seconds and ships the sealed snapshot to the other voters; a new leader restores
 * the newest one before it serves. After the leader's power loss, every object of the site and a
 * test ConfigMap written before the last snapshot must be on the new server (zero objects lost; the
 * RPO is one snapshot interval), the lost robot's Node must be tainted out-of-service after the
 * grace period, and the taint must go when the robot is back.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { converged } from '../../lab/analysis.ts';
import { loadApiServerIdentity } from '../../lab/kube-apiserver/apiserver.ts';
import { applyLabFault, labDown, labUp, type LabObservation, type LabState } from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';
import { assertNoLeftovers, untilLab } from './lab-wait.ts';
import { KubeHttp } from '../../lab/runtime/kube-http.ts';

const SITE = 'it-cont';
const PREFIX = 'elk-';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

after(() => {
  labDown(SITE, { prefix: PREFIX });
  assertNoLeftovers(SITE, PREFIX);
});

const until = (state: LabState, what: string, pred: (o: LabObservation) => boolean, ms?: number) =>
  untilLab(state, what, pred, { ms });

const names = (body: unknown) =>
  ((body as { items: { metadata: { name: string } }[] }).items ?? []).map((i) => i.metadata.name).sort();

test('a leader change keeps the site objects and a ConfigMap, and cleans up the lost robot', async () => {
  requireRoot('the lab continuity test');
  const state = await labUp({
    site: SITE,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: PREFIX,
    subnet: '10.77.12',
    snapshotIntervalMs: 2000,
    // The snapshot path on its own: with replication the new leader takes over from its replica
    // (test/integration/lab-replication.test.ts); snapshots stay the fallback this test covers.
    replication: false,
    lostAfterMs: 4000,
    deadAfterMs: 3000,
  });
  const identity = loadApiServerIdentity(join(state.dir, 'identity'));
  const api = (name: string) =>
    new KubeHttp({
      server: `https://${state.robots.find((r) => r.name === name)!.address}:6443`,
      caPem: readFileSync(identity.caCert, 'utf8'),
      token: identity.adminToken,
    });
  const formed = await until(state, 'the site to form', converged);
  const leader = formed.leader!;
  const ns = `site-${SITE}`;
  assert.equal(
    (
      await api(leader).call('POST', `/api/v1/namespaces/${ns}/configmaps`, {
        metadata: { name: 'keep-me' },
        data: { mission: 'dock-7' },
      })
    ).status,
    201,
  );
  // What the site holds before the leader dies.
  const kinds = [
    `/api/v1/namespaces/${ns}/configmaps`,
    `/api/v1/namespaces/${ns}/resourcequotas`,
    `/api/v1/namespaces/${ns}/limitranges`,
    `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies`,
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles`,
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`,
    `/apis/k8s.cni.cncf.io/v1/namespaces/${ns}/network-attachment-definitions`,
    '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
  ];
  const before = await Promise.all(kinds.map(async (k) => names(await api(leader).ok('GET', k))));
  assert.ok(before[0]!.includes('keep-me'));
  assert.ok(before[6]!.length > 0, 'the site has its network attachment');
  // Wait for a snapshot taken after the write (the RPO is one interval) and shipped to both other
  // voters. The count moves when a snapshot is taken, not when it is shipped: the next one after
  // `formed` may have begun before the write, and the one after that is taken after it but may not
  // be shipped yet. A leader takes, ships and records one snapshot before it starts the next, so a
  // third one taken means the second (after the write) has been shipped and recorded.
  const taken = (o: LabObservation) =>
    Number(o.robots.find((r) => r.name === leader)?.status?.controlPlane.details?.['snapshotsTaken'] ?? 0);
  const n0 = taken(formed);
  await until(state, 'a snapshot after the write, shipped', (o) => taken(o) >= n0 + 3, 30_000);

  await applyLabFault(state, { kind: 'kill', node: leader });
  const reformed = await until(
    state,
    'a new leader with every survivor Ready',
    (o) => converged(o) && o.leader !== leader,
  );
  const next = reformed.leader!;
  const lead = reformed.robots.find((r) => r.name === next)!.status!;
  assert.match(
    String(lead.controlPlane.details?.['restoredFrom']),
    /^e\d+-/,
    'the new leader restored a snapshot',
  );
  const afterChange = await Promise.all(kinds.map(async (k) => names(await api(next).ok('GET', k))));
  kinds.forEach((k, i) => {
    const lost = before[i]!.filter((n) => !afterChange[i]!.includes(n));
    assert.deepEqual(lost, [], `objects lost from ${k}`);
  });
  const cm = (await api(next).ok('GET', `/api/v1/namespaces/${ns}/configmaps/keep-me`)) as {
    data: Record<string, string>;
  };
  assert.deepEqual(cm.data, { mission: 'dock-7' });

  // The dead leader's Node came back with the snapshot; after the grace period it is out of service.
  const taints = async () =>
    (
      (await api(next).ok('GET', `/api/v1/nodes/${leader}`)) as { spec?: { taints?: { key: string }[] } }
    ).spec?.taints?.map((t) => t.key) ?? [];
  const end = Date.now() + 30_000;
  while (!(await taints()).includes('node.kubernetes.io/out-of-service')) {
    assert.ok(Date.now() < end, `${leader} was not tainted out-of-service`);
    await sleep(500);
  }
  await applyLabFault(state, { kind: 'restart', node: leader });
  await until(
    state,
    `${leader} back and Ready`,
    (o) => converged(o) && o.robots.every((r) => r.status !== null),
  );
  const end2 = Date.now() + 30_000;
  while ((await taints()).includes('node.kubernetes.io/out-of-service')) {
    assert.ok(Date.now() < end2, `${leader} kept its out-of-service taint after it returned`);
    await sleep(500);
  }
});
