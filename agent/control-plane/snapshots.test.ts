import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { EdgeError } from '../errors.ts';
import { newestRecord, openSnapshot, sealSnapshot, snapshotKey } from './snapshots.ts';

const plain = Buffer.from('etcd snapshot bytes '.repeat(100));
const record = {
  name: 'e3-r1',
  epoch: 3,
  from: 'r1',
  sha256: createHash('sha256').update(plain).digest('hex'),
  size: plain.length,
  createdAt: '2026-11-22T09:00:00.000Z',
};
const key = snapshotKey(Buffer.alloc(32, 1));

test('a sealed snapshot opens with the site key, and hides its content', () => {
  const sealed = sealSnapshot(key, record, plain);
  assert.ok(!sealed.includes(plain.subarray(0, 40)), 'the content is encrypted');
  assert.deepEqual(openSnapshot(key, sealed), { record, plain });
});

test('tampering, truncation, another site key and a false record are all refused', () => {
  const sealed = sealSnapshot(key, record, plain);
  const flipped = Buffer.from(sealed);
  flipped[flipped.length - 1]! ^= 1;
  const reject = (b: Buffer, k = key) =>
    assert.throws(
      () => openSnapshot(k, b),
      (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_SNAPSHOT_REJECTED',
    );
  reject(flipped);
  reject(sealed.subarray(0, 30));
  reject(sealed, snapshotKey(Buffer.alloc(32, 2)));
  reject(sealSnapshot(key, { ...record, size: record.size + 1 }, plain));
});

test('the newest snapshot is the one of the highest epoch, then the latest', () => {
  const a = { ...record, name: 'a', epoch: 3, createdAt: '2026-11-22T09:00:00.000Z' };
  const b = { ...record, name: 'b', epoch: 4, createdAt: '2026-11-22T08:00:00.000Z' };
  const c = { ...record, name: 'c', epoch: 4, createdAt: '2026-11-22T08:30:00.000Z' };
  assert.equal(newestRecord([a, b, c])?.name, 'c');
  assert.equal(newestRecord([]), null);
});
