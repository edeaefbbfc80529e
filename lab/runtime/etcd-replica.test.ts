/**
 * The replication mechanics against a real etcd (Debian's 3.4), without network namespaces: two
 * "robots" on two loopback addresses. The leader's etcd takes the standby as a learner over mutual
 * TLS with the voters-only peer CA; the learner applies the leader's writes with the leader's
 * revisions; after the leader dies, the standby's stopped learner seeds a new single-member etcd
 * that holds every write and goes on from the same revision. etcd 3.4's --force-new-cluster panics
 * on a learner's data dir ("removed all voters"), which is why takeover restores the learner's
 * bbolt file instead (docs/k3s.md "Replication").
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { etcdPeerUrl, standbyPlan } from '../../agent/control-plane/replica.ts';
import { freePort } from '../kube-apiserver/apiserver.ts';
import { etcdPeerFlags, etcdPeerTlsIn, issueEtcdPeerCerts } from '../kube-apiserver/etcd-peer.ts';
import { EtcdProcesses, singleMemberFlags, untilValue } from './testing/etcd-processes.ts';
import { applyMemberChange, etcdGateway, etcdRevision, EtcdReplica, listMembers } from './etcd-replica.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-replica-'));
const etcds = new EtcdProcesses();
after(() => {
  etcds.killAll();
  if (!process.env['KEEP_REPLICA_TEST']) rmSync(dir, { recursive: true, force: true });
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const b64 = (s: string) => Buffer.from(s).toString('base64');

const etcd = (args: string[]) => etcds.spawn(args);
const until = <T>(what: string, f: () => Promise<T | null>) => untilValue(what, f);

test('a learner replicates over mutual TLS, and its data seeds the next leader with every write', async () => {
  const voters = [
    { name: 'r1', address: '127.0.0.1' },
    // Connections on loopback come from 127.0.0.1, whatever address they go to.
    { name: 'r2', address: '127.0.0.2', alsoIps: ['127.0.0.1'] },
  ];
  await issueEtcdPeerCerts(join(dir, 'ca'), voters, (n) => join(dir, n, 'tls'));
  const tls = (n: string) => etcdPeerTlsIn(join(dir, n, 'tls'));
  const [c1, c2, c3, peerPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const e1 = `http://127.0.0.1:${c1}`;
  const p1 = etcdPeerUrl('127.0.0.1', peerPort);
  const p2 = etcdPeerUrl('127.0.0.2', peerPort);
  const leader = etcd([
    ...singleMemberFlags('r1', join(dir, 'r1', 'etcd'), e1, p1),
    ...etcdPeerFlags(tls('r1')),
  ]);
  await until('the leader etcd', () => etcdRevision(e1));
  const put = (endpoint: string, k: string) =>
    etcdGateway<{ header: { revision: string } }>(endpoint, '/v3/kv/put', { key: b64(k), value: b64('v') });
  for (let i = 0; i < 20; i++) await put(e1, `before-${i}`);

  // The standby plan adds r2; r2's replica joins once added (it retries until then).
  const plan = standbyPlan({
    self: 'r1',
    selfPeerUrl: p1,
    members: await listMembers(e1),
    candidates: [{ id: 'r2', peerUrl: p2 }],
    maxLearners: 1,
  });
  assert.deepEqual(plan, [{ kind: 'addLearner', node: 'r2', peerUrl: p2 }]);
  const replica = new EtcdReplica({
    self: 'r2',
    epoch: 3,
    leader: { id: 'r1', peerUrl: p1 },
    selfPeerUrl: p2,
    tls: tls('r2'),
    dir: join(dir, 'r2', 'replica-epoch-3'),
    clientPort: c2,
    log: pino({ level: 'silent' }),
    retryMs: 200,
    pollMs: 100,
  });
  replica.start();
  await sleep(500);
  assert.equal(replica.position(), null, 'not a member yet: no position');
  for (const c of plan) await applyMemberChange(e1, c);
  const members = await listMembers(e1);
  assert.equal(members.filter((m) => m.learner).length, 1);
  // etcd 3.4 takes one learner: a second is refused, hence one standby.
  await assert.rejects(
    applyMemberChange(e1, { kind: 'addLearner', node: 'r3', peerUrl: etcdPeerUrl('127.0.0.3', peerPort) }),
    /too many learner/,
  );

  let last = 0;
  for (let i = 0; i < 30; i++) last = Number((await put(e1, `during-${i}`)).header.revision);
  await until('the replica to catch up', async () =>
    (replica.position()?.revision ?? 0) >= last ? true : null,
  );
  assert.deepEqual(replica.position(), { epoch: 3, revision: last });

  // The leader loses power; the standby takes over from its replica.
  leader.kill('SIGKILL');
  await replica.stop({ graceful: true });
  const restored = join(dir, 'r2', 'epoch-4', 'etcd');
  await new Promise<void>((resolve, reject) =>
    spawn(
      'etcdctl',
      [
        'snapshot',
        'restore',
        replica.dbPath,
        '--skip-hash-check',
        `--data-dir=${restored}`,
        '--name=r2',
        `--initial-cluster=r2=${p2}`,
        `--initial-advertise-peer-urls=${p2}`,
      ],
      { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'ignore' },
    ).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`restore exited ${code}`)))),
  );
  const e3 = `http://127.0.0.1:${c3}`;
  etcd([...singleMemberFlags('r2', restored, e3, p2), ...etcdPeerFlags(tls('r2'))]);
  assert.equal(await until('the new leader etcd', () => etcdRevision(e3)), last);
  const m = await listMembers(e3);
  assert.deepEqual(
    m.map((x) => [x.name, x.learner]),
    [['r2', false]],
    'a single voting member: the old leader and its learner are gone',
  );
  const after = await put(e3, 'after');
  assert.equal(Number(after.header.revision), last + 1, 'revisions go on from the replica');
  const range = await etcdGateway<{ count?: string }>(e3, '/v3/kv/range', {
    key: b64('during-'),
    range_end: b64('during.'),
    count_only: true,
  });
  assert.equal(range.count, '30');
});

test('a host without a voter certificate of the peer CA cannot replicate', async () => {
  await issueEtcdPeerCerts(join(dir, 'ca2'), [{ name: 'r1', address: '127.0.0.1' }], (n) =>
    join(dir, 'x', n),
  );
  await issueEtcdPeerCerts(
    join(dir, 'rogue-ca'),
    [{ name: 'r9', address: '127.0.0.9', alsoIps: ['127.0.0.1'] }],
    (n) => join(dir, 'y', n),
  );
  const [c1, c9, peerPort] = [await freePort(), await freePort(), await freePort()];
  const e1 = `http://127.0.0.1:${c1}`;
  const p1 = etcdPeerUrl('127.0.0.1', peerPort);
  const p9 = etcdPeerUrl('127.0.0.9', peerPort);
  etcd([
    ...singleMemberFlags('r1', join(dir, 'x', 'etcd'), e1, p1),
    ...etcdPeerFlags(etcdPeerTlsIn(join(dir, 'x', 'r1'))),
  ]);
  await until('the leader etcd', () => etcdRevision(e1));
  // Even a learner slot made for it (a leader fooled into adding it) gives it nothing.
  await applyMemberChange(e1, { kind: 'addLearner', node: 'r9', peerUrl: p9 });
  const rogue = new EtcdReplica({
    self: 'r9',
    epoch: 1,
    leader: { id: 'r1', peerUrl: p1 },
    selfPeerUrl: p9,
    tls: etcdPeerTlsIn(join(dir, 'y', 'r9')),
    dir: join(dir, 'y', 'replica'),
    clientPort: c9,
    log: pino({ level: 'silent' }),
    retryMs: 200,
    pollMs: 100,
  });
  rogue.start();
  await sleep(3000);
  assert.equal(rogue.position(), null);
  await rogue.discard();
});

test('a replica the leader removed starts clean and can be added again', async () => {
  const voters = [
    { name: 'r1', address: '127.0.0.1' },
    { name: 'r2', address: '127.0.0.2', alsoIps: ['127.0.0.1'] },
  ];
  await issueEtcdPeerCerts(join(dir, 'ca3'), voters, (n) => join(dir, 'z', n));
  const [c1, c2, peerPort] = [await freePort(), await freePort(), await freePort()];
  const e1 = `http://127.0.0.1:${c1}`;
  const p1 = etcdPeerUrl('127.0.0.1', peerPort);
  const p2 = etcdPeerUrl('127.0.0.2', peerPort);
  etcd([
    ...singleMemberFlags('r1', join(dir, 'z', 'etcd'), e1, p1),
    ...etcdPeerFlags(etcdPeerTlsIn(join(dir, 'z', 'r1'))),
  ]);
  await until('the leader etcd', () => etcdRevision(e1));
  const replica = new EtcdReplica({
    self: 'r2',
    epoch: 2,
    leader: { id: 'r1', peerUrl: p1 },
    selfPeerUrl: p2,
    tls: etcdPeerTlsIn(join(dir, 'z', 'r2')),
    dir: join(dir, 'z', 'replica'),
    clientPort: c2,
    log: pino({ level: 'silent' }),
    retryMs: 200,
    pollMs: 100,
  });
  replica.start();
  await applyMemberChange(e1, { kind: 'addLearner', node: 'r2', peerUrl: p2 });
  await until('the replica to join', async () => replica.position());
  const learner = (await listMembers(e1)).find((m) => m.learner)!;
  await applyMemberChange(e1, { kind: 'remove', id: learner.id, reason: 'test' });
  await until('the removed replica to give up its data', async () =>
    replica.position() === null ? true : null,
  );
  // etcd may refuse an add right after a removal (`member not found` while it applies the
  // removal); the leader's agent retries every REPLICA_SYNC_MS, as this does.
  await until('the learner added again', () =>
    applyMemberChange(e1, { kind: 'addLearner', node: 'r2', peerUrl: p2 }).then(() => true),
  );
  await until('the replica to join again', async () => replica.position());
  await replica.discard();
});
