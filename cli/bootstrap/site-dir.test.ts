import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ensureSiteIdentity,
  FileStateStore,
  InMemoryStateStore,
  loadSiteIdentity,
  siteDirFor,
  type StateStore,
} from './site-dir.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-dir-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the site directory defaults to .edgectl/<site-id> beside the inventory', () => {
  assert.equal(siteDirFor('dock-a', '/srv/sites/site.yaml').root, '/srv/sites/.edgectl/dock-a');
  assert.equal(siteDirFor('dock-a', '/srv/sites/site.yaml', '/x').siteKey, '/x/site.key');
});

test('the site identity is made once, 0600 in a 0700 directory, and read back after', () => {
  const sd = siteDirFor('s', join(dir, 'site.yaml'));
  assert.equal(loadSiteIdentity(sd), null);
  const first = ensureSiteIdentity(sd, (n) => Buffer.alloc(n, 0xab));
  const keys = { send: 1, accept: [1], refused: [] };
  assert.deepEqual(first, { identity: { siteKeyHex: 'ab'.repeat(32), keys }, created: true });
  assert.equal(statSync(sd.siteKey).mode & 0o777, 0o600);
  assert.equal(statSync(sd.root).mode & 0o777, 0o700);
  const second = ensureSiteIdentity(sd, (n) => Buffer.alloc(n, 0xcd));
  assert.deepEqual(second, { identity: { siteKeyHex: 'ab'.repeat(32), keys }, created: false });
  writeFileSync(sd.siteKey, 'short\n');
  assert.throws(() => loadSiteIdentity(sd), /not 64 hex digits/);
});

for (const [name, make] of [
  ['file', () => new FileStateStore(join(dir, `state-${Math.floor(performance.now() * 1000)}`))],
  ['in-memory', () => new InMemoryStateStore()],
] as const) {
  test(`state store (${name}): empty at first, saves, loads, clears`, async () => {
    const store: StateStore = make();
    assert.deepEqual(await store.load('r1'), { done: {}, pendingChanged: [] });
    await store.save('r1', { done: { a: 'h1' }, pendingChanged: ['a'] });
    assert.deepEqual(await store.load('r1'), { done: { a: 'h1' }, pendingChanged: ['a'] });
    assert.deepEqual(await store.load('r2'), { done: {}, pendingChanged: [] });
    await store.clear('r1');
    assert.deepEqual(await store.load('r1'), { done: {}, pendingChanged: [] });
  });
}

test('a corrupt state file means "check everything again", not an error', async () => {
  const store = new FileStateStore(join(dir, 'corrupt'));
  await store.save('r1', { done: { a: 'h' }, pendingChanged: [] });
  writeFileSync(join(dir, 'corrupt', 'r1.json'), '{ not json');
  assert.deepEqual(await store.load('r1'), { done: {}, pendingChanged: [] });
  assert.equal(readFileSync(join(dir, 'corrupt', 'r1.json'), 'utf8'), '{ not json');
});
