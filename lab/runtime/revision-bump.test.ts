/**
 * The revision bump against a real etcd (Debian's 3.4, what robots and the lab run), without
 * network namespaces: a leader's etcd goes on writing past what a standby restored; after the
 * restore and the bump, the new etcd's revision is above every revision the old one handed out,
 * and a read from an old revision is refused as compacted instead of answering from the past.
 */
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { REVISION_BUMP } from '../../agent/k3s/revision-bump.ts';
import { freePort } from '../kube-apiserver/apiserver.ts';
import { etcdGateway, etcdRevision } from './etcd-replica.ts';
import { bumpRevision } from './revision-bump.ts';
import { EtcdProcesses, singleMemberFlags, untilValue } from './testing/etcd-processes.ts';

const execFileP = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'edgectl-revision-bump-'));
const etcds = new EtcdProcesses();
after(() => {
  etcds.killAll();
  rmSync(dir, { recursive: true, force: true });
});
const b64 = (s: string) => Buffer.from(s).toString('base64');

async function startEtcd(dataDir: string): Promise<{ endpoint: string; child: ChildProcess }> {
  const [client, peer] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const child = etcds.spawn(singleMemberFlags('r1', dataDir, endpoint, peerUrl));
  await untilValue('etcd to serve', () => etcdRevision(endpoint));
  return { endpoint, child };
}

const put = async (endpoint: string, k: string) =>
  Number(
    (
      await etcdGateway<{ header: { revision: string } }>(endpoint, '/v3/kv/put', {
        key: b64(k),
        value: b64('v'),
      })
    ).header.revision,
  );

test('a restored etcd moves past every revision the old leader issued, and the past reads as compacted', async () => {
  const old = await startEtcd(join(dir, 'old'));
  for (let i = 0; i < 10; i++) await put(old.endpoint, `/registry/replicated-${i}`);
  const snapshot = join(dir, 'replica.db');
  await execFileP('etcdctl', [`--endpoints=${old.endpoint}`, 'snapshot', 'save', snapshot], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  const restoredRevision = await etcdRevision(old.endpoint);
  // The old leader goes on: these revisions reached clients but never the standby.
  let oldNewest = 0;
  for (let i = 0; i < 10; i++) oldNewest = await put(old.endpoint, `/registry/lost-${i}`);
  assert.ok(oldNewest > restoredRevision);
  old.child.kill('SIGKILL');

  const restored = join(dir, 'new');
  await execFileP(
    'etcdctl',
    [
      'snapshot',
      'restore',
      snapshot,
      `--data-dir=${restored}`,
      '--name=r1',
      '--initial-cluster=r1=http://127.0.0.1:2380',
      '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    ],
    { env: { ...process.env, ETCDCTL_API: '3' } },
  );
  const bump = await bumpRevision(restored);
  assert.deepEqual(bump, { from: restoredRevision, to: restoredRevision + REVISION_BUMP, already: false });
  // A resumed plan runs it again before etcd started: nothing moves twice.
  assert.deepEqual(await bumpRevision(restored), { from: bump.to, to: bump.to, already: true });

  const next = await startEtcd(restored);
  assert.equal(await etcdRevision(next.endpoint), bump.to);
  const first = await put(next.endpoint, '/registry/after');
  assert.ok(
    first > oldNewest,
    `the new leader's first write (${first}) is after the old one's (${oldNewest})`,
  );
  // The replicated keys are all there, at the revisions they had.
  const all = await etcdGateway<{ kvs?: { key: string; mod_revision: string }[] }>(
    next.endpoint,
    '/v3/kv/range',
    {
      key: b64('/registry/replicated-'),
      range_end: b64('/registry/replicated.'),
    },
  );
  assert.equal(all.kvs?.length, 10);
  assert.ok(all.kvs!.every((kv) => Number(kv.mod_revision) <= restoredRevision));
  // A read at a revision from before the takeover is refused, not answered from a diverged past.
  for (const rev of [restoredRevision, oldNewest])
    await assert.rejects(
      etcdGateway(next.endpoint, '/v3/kv/range', { key: b64('/registry/lost-0'), revision: String(rev) }),
      /compacted/,
    );

  // A running etcd holds its data dir: the tool refuses rather than change a live member.
  await assert.rejects(bumpRevision(restored), { code: 'EDGE_REVISION_BUMP_FAILED' });
});
