/**
 * ChildObjectClient (kube-child.ts) against children run from the sources: the tests' child over an
 * in-memory store (testing/memory-kube-worker.ts) for the protocol, the lifecycle and the failures,
 * and the robot's own child (kube-worker.ts) for its errors. test/integration/kube-client.test.ts
 * runs the SiteApplier contract through it against a real kube-apiserver.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { EdgeError } from '../errors.ts';
import { InMemoryObjectClient } from './in-memory-client.ts';
import { ChildObjectClient } from './kube-child.ts';
import { KubeObjectClient } from './kube-client.ts';
import { readKubeconfig } from './kube-config.ts';
import { ConflictError, refOf, type ObjectClient } from './object-client.ts';
import type { KubeObject } from './objects.ts';
import { k3sKubeconfigText } from './testing/k3s-kubeconfig.ts';

const MEMORY_WORKER = fileURLToPath(new URL('./testing/memory-kube-worker.ts', import.meta.url));
const KUBE_WORKER = fileURLToPath(new URL('./kube-worker.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'edgectl-kube-child-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const clients: ChildObjectClient[] = [];
after(() => Promise.all(clients.map((c) => c.close())));
function childClient(
  o: { worker?: string; args?: string[]; idleCloseMs?: number; callTimeoutMs?: number } = {},
) {
  const c = new ChildObjectClient({ worker: MEMORY_WORKER, ...o });
  clients.push(c);
  return c;
}

const configMap = (name: string, data: Record<string, string> = { a: '1' }): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'site-a', labels: { 'edgectl.io/site': 'a' } },
  data,
});

/** rejection returns what `p` rejects with. */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
}

/** script runs the same calls against a client and returns what each gave. */
async function script(c: ObjectClient): Promise<unknown[]> {
  const ref = refOf(configMap('one'));
  const applied = await c.apply(configMap('one'));
  const rv = applied.metadata.resourceVersion!;
  return [
    applied,
    await c.apply(configMap('one')),
    await c.get(ref),
    await c.get({ ...ref, name: 'none' }),
    await c.list('v1', 'ConfigMap', { labelSelector: 'edgectl.io/site=a' }),
    await c.list('v1', 'ConfigMap', { labelSelector: 'edgectl.io/site=b' }),
    await c.mergePatch(ref, { data: { b: '2' } }),
    await c.mergePatch(ref, { data: { a: null } }, String(Number(rv) + 1)),
    await c.delete(ref, { gracePeriodSeconds: 0 }),
    await c.delete(ref),
  ];
}

test('every call round-trips through the child and gives what the client gives in-process', async () => {
  const c = childClient();
  assert.deepEqual(await script(c), await script(new InMemoryObjectClient()));
});

test('concurrent calls share one child and each gets its own answer', async () => {
  const c = childClient();
  const names = Array.from({ length: 40 }, (_, i) => `cm-${i}`);
  const applied = await Promise.all(names.map((n) => c.apply(configMap(n, { n }))));
  assert.deepEqual(
    applied.map((o) => [o.metadata.name, o.data]),
    names.map((n) => [n, { n }]),
  );
  const pid = c.pid;
  const read = await Promise.all(names.map((n) => c.get(refOf(configMap(n)))));
  assert.deepEqual(
    read.map((o) => o?.data),
    names.map((n) => ({ n })),
  );
  assert.equal(c.pid, pid, 'one child served them all');
  assert.equal((await c.list('v1', 'ConfigMap')).length, names.length);
});

test('a ConflictError comes back a ConflictError, with the message, code and hint of the one thrown', async () => {
  const inProcess = new InMemoryObjectClient();
  const c = childClient();
  const ref = refOf(configMap('x'));
  const errors = [];
  for (const client of [inProcess, c] as ObjectClient[]) {
    await client.apply(configMap('x'));
    errors.push(await rejection(client.mergePatch(ref, { data: { a: '2' } }, 'stale')));
  }
  const [want, got] = errors as [ConflictError, ConflictError];
  assert.ok(want instanceof ConflictError);
  assert.ok(got instanceof ConflictError && got instanceof EdgeError);
  assert.deepEqual(
    [got.name, got.code, got.message, got.hint],
    [want.name, want.code, want.message, want.hint],
  );
  // Any other error keeps its message: the in-memory client throws a plain one for a missing object.
  const missing = await rejection(c.mergePatch({ ...ref, name: 'none' }, {}));
  assert.ok(missing instanceof Error && !(missing instanceof EdgeError));
  assert.equal(missing.message, 'ConfigMap none not found');
});

test("the robot's child answers with the HTTPS client's EdgeErrors, code, message and hint as in-process", async () => {
  // A kubeconfig that is not there, and one whose server does not answer (nothing listens on port 1).
  const missing = join(dir, 'missing.yaml');
  const broken = join(dir, 'refused.yaml');
  writeFileSync(
    broken,
    k3sKubeconfigText({
      server: 'https://127.0.0.1:1',
      caPem: 'not a CA',
      cert: 'not a cert',
      key: 'not a key',
    }),
  );
  const ref = { apiVersion: 'v1', kind: 'Node', name: 'r1' };
  for (const path of [missing, broken]) {
    const want = await rejection((async () => new KubeObjectClient(readKubeconfig(path)).get(ref))());
    const got = await rejection(childClient({ worker: KUBE_WORKER, args: [path] }).get(ref));
    assert.ok(want instanceof EdgeError && got instanceof EdgeError, String(got));
    assert.deepEqual([got.code, got.message, got.hint], [want.code, want.message, want.hint]);
    assert.equal((got.cause as Error | undefined)?.message, (want.cause as Error | undefined)?.message);
  }
});

test('a child that crashes fails every call it held, naming the exit and quoting its stderr; the next call starts a new one', async () => {
  const c = childClient();
  await c.apply(configMap('kept'));
  const first = c.pid;
  const held = [
    c.get({ apiVersion: 'v1', kind: 'Hang', name: 'h' }),
    c.get({ apiVersion: 'v1', kind: 'Crash', name: 'boom' }),
  ];
  for (const p of held)
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof EdgeError);
      assert.equal(e.code, 'EDGE_SITE_API_CHILD');
      assert.match(
        e.message,
        /^get: the Kubernetes client's child process \(node .*memory-kube-worker\.ts\)/,
      );
      assert.match(e.message, /exited with code 3 before it answered/);
      assert.match(e.message, /crashing on boom, as the test asked/);
      assert.ok(e.hint);
      return true;
    });
  // A new child, with a new (empty) store.
  assert.equal(await c.get(refOf(configMap('kept'))), null);
  assert.notEqual(c.pid, first);
});

test('a child that cannot start fails the call with its stderr', async () => {
  const c = childClient({ worker: join(dir, 'no-such-worker.cjs') });
  await assert.rejects(c.list('v1', 'Node'), (e: unknown) => {
    assert.ok(e instanceof EdgeError);
    assert.equal(e.code, 'EDGE_SITE_API_CHILD');
    assert.match(e.message, /^list: .*no-such-worker\.cjs.* exited with code 1 before it answered/);
    assert.match(e.message, /Cannot find module/);
    return true;
  });
});

/** until waits for `f` to hold, checking every few milliseconds. */
async function until(f: () => boolean): Promise<void> {
  while (!f()) await new Promise((r) => setTimeout(r, 5));
}

test('an idle child is ended, and the next call starts another', async () => {
  const c = childClient({ idleCloseMs: 20 });
  await c.apply(configMap('a'));
  const first = c.pid;
  assert.ok(first !== undefined);
  await until(() => c.pid === undefined);
  // The store was the first child's: the second starts empty.
  assert.equal(await c.get(refOf(configMap('a'))), null);
  assert.ok(c.pid !== undefined && c.pid !== first);
});

test('a call the child never answers fails after the timeout; the child is killed and the next call gets a new one', async () => {
  // Long enough for the child's start and the first call on a busy machine.
  const c = childClient({ callTimeoutMs: 3_000 });
  await c.apply(configMap('a'));
  const first = c.pid;
  await assert.rejects(c.get({ apiVersion: 'v1', kind: 'Hang', name: 'h' }), (e: unknown) => {
    assert.ok(e instanceof EdgeError);
    assert.equal(e.code, 'EDGE_SITE_API_TIMEOUT');
    assert.match(e.message, /^get: the Kubernetes client's child process .* answered nothing within 3 s$/);
    return true;
  });
  assert.equal(await c.get(refOf(configMap('a'))), null);
  assert.notEqual(c.pid, first);
});

test('close fails the calls in flight, waits for the child to exit, and refuses later calls', async () => {
  const c = childClient();
  await c.apply(configMap('a'));
  const pending = rejection(c.get({ apiVersion: 'v1', kind: 'Hang', name: 'h' }));
  const pid = c.pid!;
  await c.close();
  assert.equal(((await pending) as EdgeError).code, 'EDGE_SITE_API_CLOSED');
  assert.equal(c.pid, undefined);
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  await assert.rejects(c.get(refOf(configMap('a'))), { code: 'EDGE_SITE_API_CLOSED' });
  await c.close();
});
