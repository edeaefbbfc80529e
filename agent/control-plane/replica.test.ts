import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { SnapshotRecord } from './runtime.ts';
import {
  compareReplica,
  etcdPeerUrl,
  NO_REPLICA,
  standbyPlan,
  takeoverSource,
  type EtcdMember,
} from './replica.ts';

const snap = (epoch: number): SnapshotRecord => ({
  name: `e${epoch}-snap`,
  epoch,
  from: 'r1',
  sha256: 'a'.repeat(64),
  size: 100,
  createdAt: '2026-12-06T10:00:00.000Z',
});

test('takeover: the replica when it is of the newest committed snapshot epoch or newer', () => {
  assert.deepEqual(takeoverSource({ replica: { epoch: 4, revision: 900 }, snapshot: snap(4) }), {
    kind: 'replica',
    position: { epoch: 4, revision: 900 },
  });
  assert.equal(takeoverSource({ replica: { epoch: 5, revision: 9 }, snapshot: snap(4) }).kind, 'replica');
  assert.equal(takeoverSource({ replica: { epoch: 5, revision: 9 }, snapshot: null }).kind, 'replica');
});

test('takeover: the snapshot when the replica is of an older epoch, empty or missing', () => {
  assert.equal(takeoverSource({ replica: { epoch: 3, revision: 5000 }, snapshot: snap(4) }).kind, 'snapshot');
  assert.equal(takeoverSource({ replica: NO_REPLICA, snapshot: snap(4) }).kind, 'snapshot');
  assert.equal(takeoverSource({ replica: null, snapshot: snap(4) }).kind, 'snapshot');
  assert.equal(takeoverSource({ replica: { epoch: 4, revision: 0 }, snapshot: snap(4) }).kind, 'snapshot');
  assert.equal(takeoverSource({ replica: null, snapshot: null }).kind, 'empty');
});

test('positions order by epoch first: an old leader’s divergent revisions never outrank a newer epoch', () => {
  assert.ok(compareReplica({ epoch: 6, revision: 10 }, { epoch: 5, revision: 10_000 }) > 0);
  assert.ok(compareReplica({ epoch: 6, revision: 10 }, { epoch: 6, revision: 11 }) < 0);
  assert.equal(compareReplica({ epoch: 6, revision: 11 }, { epoch: 6, revision: 11 }), 0);
  fc.assert(
    fc.property(fc.nat(), fc.nat(), fc.nat(), fc.nat(), (e1, r1, e2, r2) => {
      const a = { epoch: e1, revision: r1 };
      const b = { epoch: e2, revision: r2 };
      assert.equal(Math.sign(compareReplica(a, b)), -Math.sign(compareReplica(b, a)));
      assert.ok(compareReplica(a, NO_REPLICA) >= 0);
    }),
  );
});

const url = (h: string) => etcdPeerUrl(h);
const leader: EtcdMember = { id: '1', name: 'r1', peerUrls: [url('10.0.0.1')], learner: false };
const cands = [
  { id: 'r2', peerUrl: url('10.0.0.2') },
  { id: 'r3', peerUrl: url('10.0.0.3') },
];

test('standby: a new leader adds the first live voter as its one learner', () => {
  assert.deepEqual(
    standbyPlan({
      self: 'r1',
      selfPeerUrl: url('10.0.0.1'),
      members: [leader],
      candidates: cands,
      maxLearners: 1,
    }),
    [{ kind: 'addLearner', node: 'r2', peerUrl: url('10.0.0.2') }],
  );
});

test('standby: a caught-up learner that is still live is kept, even when not listed first', () => {
  const r3: EtcdMember = { id: '3', name: 'r3', peerUrls: [url('10.0.0.3')], learner: true };
  assert.deepEqual(
    standbyPlan({
      self: 'r1',
      selfPeerUrl: url('10.0.0.1'),
      members: [leader, r3],
      candidates: cands,
      maxLearners: 1,
    }),
    [],
  );
});

test('standby: a dead learner is removed before its replacement is added; a second voter is removed', () => {
  const r3: EtcdMember = { id: '3', name: 'r3', peerUrls: [url('10.0.0.3')], learner: true };
  const stray: EtcdMember = { id: '9', name: 'r9', peerUrls: [url('10.0.0.9')], learner: false };
  assert.deepEqual(
    standbyPlan({
      self: 'r1',
      selfPeerUrl: url('10.0.0.1'),
      members: [leader, r3, stray],
      candidates: [cands[0]!],
      maxLearners: 1,
    }),
    [
      { kind: 'remove', id: '3', reason: 'not a live voter' },
      { kind: 'remove', id: '9', reason: 'a voting member other than the leader' },
      { kind: 'addLearner', node: 'r2', peerUrl: url('10.0.0.2') },
    ],
  );
});

test('standby: with room for more learners (etcd 3.6), every live voter replicates', () => {
  const plan = standbyPlan({
    self: 'r1',
    selfPeerUrl: url('10.0.0.1'),
    members: [leader],
    candidates: [{ id: 'r1', peerUrl: url('10.0.0.1') }, ...cands],
    maxLearners: 4,
  });
  assert.deepEqual(
    plan.map((c) => (c.kind === 'addLearner' ? c.node : c.id)),
    ['r2', 'r3'],
  );
});
