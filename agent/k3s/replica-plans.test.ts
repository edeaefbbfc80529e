import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { standbyPlan } from '../control-plane/replica.ts';
import { assertGolden } from '../site/golden.ts';
import { formatPlan } from './execute.ts';
import { executePlan } from './execute.ts';
import { DATASTORE_UNIT, REPLICA_UNIT, SYSTEMD_DIR } from './paths.ts';
import { renderEtcdUnit } from './render.ts';
import {
  abandonReplicaPlan,
  chooseDatastoreSource,
  datastoreDir,
  datastoreStartPlan,
  parseEndpointRevision,
  parseEtcdDirs,
  parseMemberList,
  replicaDir,
  replicaStartPlan,
  replicaStopPlan,
  standbyChangePlan,
  takeoverPlan,
  type DatastoreFacts,
} from './replica-plans.ts';
import { REVISION_BUMP } from './revision-bump.ts';
import { EtcdSiteModel } from './testing/etcd-model.ts';
import { RobotModel } from './testing/robot-model.ts';

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
    ['r2 takes over epoch 8 from its replica of epoch 7', takeoverPlan(R2, 8, { kind: 'replica', epoch: 7 })],
    [
      'r3 takes over epoch 9 from a snapshot',
      takeoverPlan(R3, 9, {
        kind: 'snapshot',
        path: '/var/lib/edgectl/snapshots/received/e7-20261206T101500000Z-r1',
        sha256: 'ab'.repeat(32),
      }),
    ],
    ['r1 starts a new site', takeoverPlan(R1, 1, { kind: 'empty' })],
    [
      'r2 abandons a takeover of epoch 8 whose replica (epoch 7) did not restore',
      abandonReplicaPlan('r2', 8, 7),
    ],
    [
      'r1, re-elected for epoch 9, carries its own datastore of epoch 8 on',
      takeoverPlan(R1, 9, { kind: 'datastore', epoch: 8 }),
    ],
  ] as const;
  assertGolden(`${testdata}replica-plans.golden.txt`, plans.map(([t, p]) => formatPlan(t, p)).join('\n'));
});

test('no replication plan names a worker credential or sends etcd traffic in clear', () => {
  const text = JSON.stringify([
    replicaStartPlan(R2, R1, 7),
    datastoreStartPlan(R2, 8, { kind: 'replica', epoch: 7 }),
    standbyChangePlan('r1', [{ kind: 'addLearner', node: 'r2', peerUrl: 'https://10.20.0.12:2380' }]),
  ]);
  assert.doesNotMatch(text, /http:\/\//, 'no plain HTTP, not even on loopback');
  assert.match(text, /ETCD_PEER_CLIENT_CERT_AUTH=true/);
  assert.match(text, /ETCD_CLIENT_CERT_AUTH=true/);
  assert.match(text, /--cert=\/etc\/edgectl\/etcd-client\/client\.crt/);
  assert.doesNotMatch(text, /\/etc\/edgectl\/k3s|token/, 'no k3s token in an etcd plan');
});

describe('chooseDatastoreSource: the newest history this robot can start from', () => {
  const snap = (epoch: number) => ({ epoch, path: `/s/e${epoch}`, sha256: 'ab'.repeat(32) });
  // prettier-ignore
  const cases: Array<[string, DatastoreFacts, string]> = [
    ['nothing: a new site',                        { epoch: 1, datastores: [], replicas: [], snapshot: null }, 'empty'],
    ['a restart of the same epoch resumes',        { epoch: 5, datastores: [5], replicas: [{ epoch: 4, revision: 9 }], snapshot: snap(4) }, 'datastore 5'],
    ['the replica of the last epoch',              { epoch: 8, datastores: [], replicas: [{ epoch: 7, revision: 42 }], snapshot: snap(7) }, 'replica 7'],
    ['a replica beats a snapshot of an older epoch', { epoch: 8, datastores: [], replicas: [{ epoch: 7, revision: 3 }], snapshot: snap(6) }, 'replica 7'],
    ['a snapshot of a newer epoch beats a replica', { epoch: 9, datastores: [], replicas: [{ epoch: 6, revision: 99 }], snapshot: snap(8) }, 'snapshot /s/e8'],
    ['the freshest of two replicas',               { epoch: 9, datastores: [], replicas: [{ epoch: 7, revision: 99 }, { epoch: 8, revision: 2 }], snapshot: null }, 'replica 8'],
    ['its own datastore when it led last',         { epoch: 6, datastores: [5], replicas: [{ epoch: 4, revision: 9 }], snapshot: snap(5) }, 'datastore 5'],
    ['an old leader’s datastore loses to a replica of a newer epoch', { epoch: 9, datastores: [5], replicas: [{ epoch: 8, revision: 1 }], snapshot: null }, 'replica 8'],
    ['a replica that applied nothing known does not count', { epoch: 9, datastores: [], replicas: [{ epoch: 8, revision: 0 }], snapshot: snap(7) }, 'snapshot /s/e7'],
  ];
  for (const [name, facts, want] of cases)
    test(name, () => {
      const { source } = chooseDatastoreSource(facts);
      const got =
        source.kind === 'empty'
          ? 'empty'
          : source.kind === 'snapshot'
            ? `snapshot ${source.path}`
            : `${source.kind} ${source.epoch}`;
      assert.equal(got, want);
    });
});

test('the parsers read what etcdctl and ls print', () => {
  assert.deepEqual(parseEtcdDirs('epoch-8\nepoch-8.bumped\nreplica-epoch-7\nrestore.sha256\n'), {
    datastores: [8],
    replicas: [7],
  });
  assert.equal(
    parseEndpointRevision(
      '[{"Endpoint":"https://127.0.0.1:2379","Status":{"header":{"revision":1000000042}}}]',
    ),
    1000000042,
  );
  assert.equal(parseEndpointRevision('Error: context deadline exceeded'), null);
  // A member id above 2^53 survives: it is read from hex, kept in decimal.
  const members = parseMemberList(
    '{"members":[{"ID":"47a83b5a7f6b815b","name":"r3","peerURLs":["https://10.20.0.13:2380"],"isLearner":true}]}',
  );
  assert.deepEqual(members, [
    { id: '5163442232651120987', name: 'r3', peerUrls: ['https://10.20.0.13:2380'], learner: true },
  ]);
});

describe('replication plans on robot models (etcd modelled)', () => {
  async function site() {
    const etcd = new EtcdSiteModel();
    const r1 = new RobotModel({ node: 'r1', etcd });
    const r2 = new RobotModel({ node: 'r2', etcd });
    for (const m of [r1, r2]) {
      for (const role of ['datastore', 'replica'] as const)
        m.seed(
          `${SYSTEMD_DIR}/${role === 'datastore' ? DATASTORE_UNIT : REPLICA_UNIT}`,
          renderEtcdUnit(role),
        );
    }
    return { etcd, r1, r2 };
  }

  test('a learner joins once the leader adds it, follows its writes, and a takeover keeps every one', async () => {
    const { etcd, r1, r2 } = await site();
    await executePlan(r1, datastoreStartPlan(R1, 7, { kind: 'empty' }));
    etcd.write('r1', 'a');
    await executePlan(r2, replicaStartPlan(R2, R1, 7));
    assert.equal(etcd.dataOf('r2')?.writes.length ?? 0, 0, 'not a member yet: nothing replicated');
    await executePlan(
      r1,
      standbyChangePlan('r1', [{ kind: 'addLearner', node: 'r2', peerUrl: 'https://10.20.0.12:2380' }]),
    );
    etcd.write('r1', 'b');
    assert.deepEqual(etcd.dataOf('r2')?.writes, ['a', 'b']);
    etcd.powerOff('r1');
    await executePlan(r2, takeoverPlan(R2, 8, { kind: 'replica', epoch: 7 }));
    const data = etcd.dataOf('r2');
    assert.equal(etcd.role('r2'), 'datastore');
    assert.deepEqual(data?.writes, ['a', 'b'], 'no acknowledged write lost');
    assert.ok((data?.rev ?? 0) > REVISION_BUMP, 'the revision moved forward past anything r1 issued');
    assert.ok(!r2.exists(replicaDir(7)), 'the replica is discarded once its data is the datastore');
    // A restart of the same epoch keeps the data and does not bump again.
    const rev = data?.rev;
    await executePlan(r2, takeoverPlan(R2, 8, { kind: 'replica', epoch: 7 }));
    assert.equal(etcd.dataOf('r2')?.rev, rev);
  });

  test('a returning old leader discards its unreplicated writes and replicates the new leader', async () => {
    const { etcd, r1, r2 } = await site();
    await executePlan(r1, datastoreStartPlan(R1, 7, { kind: 'empty' }));
    await executePlan(r2, replicaStartPlan(R2, R1, 7));
    await executePlan(
      r1,
      standbyChangePlan('r1', [{ kind: 'addLearner', node: 'r2', peerUrl: 'https://10.20.0.12:2380' }]),
    );
    etcd.write('r1', 'kept');
    etcd.setCut('r1', true);
    etcd.write('r1', 'unreplicated');
    await executePlan(r2, takeoverPlan(R2, 8, { kind: 'replica', epoch: 7 }));
    etcd.setCut('r1', false);
    await executePlan(r1, replicaStartPlan(R1, R2, 8));
    assert.ok(!r1.exists(datastoreDir(7)), "the old leader's datastore is gone");
    await executePlan(
      r2,
      standbyChangePlan('r2', [{ kind: 'addLearner', node: 'r1', peerUrl: 'https://10.20.0.11:2380' }]),
    );
    assert.deepEqual(etcd.dataOf('r1')?.writes, ['kept'], 'one history: the new leader’s');
  });
});
