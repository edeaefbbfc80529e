import assert from 'node:assert/strict';
import { test } from 'node:test';
import { standbyPlan } from '../control-plane/replica.ts';
import { assertGolden } from '../site/golden.ts';
import { formatPlan } from './execute.ts';
import { datastoreStartPlan, replicaStartPlan, replicaStopPlan, standbyChangePlan } from './replica-plans.ts';

const testdata = new URL('./testdata/', import.meta.url).pathname;
const R1 = { id: 'r1', host: '10.20.0.11' };
const R2 = { id: 'r2', host: '10.20.0.12' };
const R3 = { id: 'r3', host: '10.20.0.13' };

test('replication plans on robots, step by step (golden)', () => {
  const plans = [
    ['r2 replicates r1, epoch 7', replicaStartPlan(R2, R1, 7)],
    ['r2 replicates r3, epoch 9, holding its replica of epoch 7', replicaStartPlan(R2, R3, 9, 7)],
    ['r2 stops its replica', replicaStopPlan('r2')],
    [
      'r1 (leader, epoch 7) replaces dead standby r3 with r2',
      standbyChangePlan(
        'r1',
        standbyPlan({
          self: 'r1',
          selfPeerUrl: 'https://10.20.0.11:2380',
          members: [
            { id: '443629905751424238', name: 'r1', peerUrls: ['https://10.20.0.11:2380'], learner: false },
            { id: '5163442232651120987', name: 'r3', peerUrls: ['https://10.20.0.13:2380'], learner: true },
          ],
          candidates: [{ id: 'r2', peerUrl: 'https://10.20.0.12:2380' }],
          maxLearners: 1,
        }),
      ),
    ],
    [
      'r2 takes over epoch 8 from its replica of epoch 7',
      datastoreStartPlan(R2, 8, { kind: 'replica', epoch: 7 }),
    ],
    [
      'r3 takes over epoch 9 from a snapshot',
      datastoreStartPlan(R3, 9, {
        kind: 'snapshot',
        path: '/var/lib/edgectl/snapshots/received/e7-20261206T101500000Z-r1',
        sha256: 'ab'.repeat(32),
      }),
    ],
    ['r1 starts a new site', datastoreStartPlan(R1, 1, { kind: 'empty' })],
  ] as const;
  assertGolden(`${testdata}replica-plans.golden.txt`, plans.map(([t, p]) => formatPlan(t, p)).join('\n'));
});

test('no replication plan names a worker credential or sends etcd traffic off the robot in clear', () => {
  const text = JSON.stringify([
    replicaStartPlan(R2, R1, 7),
    datastoreStartPlan(R2, 8, { kind: 'replica', epoch: 7 }),
  ]);
  assert.doesNotMatch(text, /http:\/\/(?!127\.0\.0\.1)/, 'only loopback is plain HTTP');
  assert.match(text, /--peer-client-cert-auth=true/);
});
