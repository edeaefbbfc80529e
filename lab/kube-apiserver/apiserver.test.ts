/**
 * The envtest-style harness against the real binaries: a site identity shared by two servers, a
 * node token that may register only its own Node, and an etcd snapshot restored into the next
 * server with its objects intact (the lab's failover keeps the site's state).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CoreV1Api } from '@kubernetes/client-node';
import { createApiServerIdentity, startApiServer, type ApiServerHandle } from './apiserver.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-apiserver-test-'));
const servers: ApiServerHandle[] = [];
after(async () => {
  for (const s of servers) await s.stop({ fast: true });
  rmSync(dir, { recursive: true, force: true });
});

test('a node token registers its own Node only, and a snapshot carries objects to the next server', async () => {
  const identity = await createApiServerIdentity(join(dir, 'identity'), { sans: [], nodes: ['r1', 'r2'] });
  const first = await startApiServer({ identity, dir: join(dir, 'epoch1') });
  servers.push(first);
  const admin = first.kubeConfig().makeApiClient(CoreV1Api);
  await admin.createNamespacedConfigMap({
    namespace: 'kube-system',
    body: { metadata: { name: 'site-state' }, data: { epoch: '1' } },
  });
  const asR1 = first.kubeConfig(identity.nodeTokens['r1']!, 'r1').makeApiClient(CoreV1Api);
  await asR1.createNode({ body: { metadata: { name: 'r1' } } });
  await assert.rejects(
    asR1.createNode({ body: { metadata: { name: 'r2' } } }),
    /forbidden|Forbidden/,
    'NodeRestriction must stop r1 from registering r2',
  );
  const snap = join(dir, 'snap.db');
  await first.snapshot(snap);
  await first.stop({ fast: true });

  const second = await startApiServer({ identity, dir: join(dir, 'epoch2'), restoreFrom: snap });
  servers.push(second);
  // The restore is its own timed step (a takeover's start reports it); a fresh start restored nothing.
  assert.equal(first.restoreMs, null);
  assert.equal(typeof second.restoreMs, 'number');
  const admin2 = second.kubeConfig().makeApiClient(CoreV1Api);
  const cm = await admin2.readNamespacedConfigMap({ name: 'site-state', namespace: 'kube-system' });
  assert.equal(cm.data?.['epoch'], '1');
  const nodes = await admin2.listNode();
  assert.deepEqual(
    nodes.items.map((n) => n.metadata?.name),
    ['r1'],
  );
});
