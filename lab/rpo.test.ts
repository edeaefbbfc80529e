import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lostWrites, type AckedWrite } from './rpo.ts';

const w = (seq: number, ackedAt: number): AckedWrite => ({
  seq,
  name: `w-${seq}`,
  ackedAt,
  resourceVersion: String(100 + seq),
});

test('lostWrites: the acknowledged writes missing on the new leader, and how long before the cut they began', () => {
  const acked = [w(1, 1000), w(2, 1100), w(3, 1200), w(4, 1300)];
  assert.deepEqual(lostWrites(acked, new Set(['w-1', 'w-2', 'w-3', 'w-4']), 1350), {
    acked: 4,
    lost: [],
    windowMs: 0,
  });
  const some = lostWrites(acked, new Set(['w-1', 'w-2']), 1350);
  assert.deepEqual(
    some.lost.map((x) => x.name),
    ['w-3', 'w-4'],
  );
  assert.equal(some.windowMs, 150);
  // A hole in the middle counts from the oldest lost write: the bound is about the oldest loss.
  assert.equal(lostWrites(acked, new Set(['w-1', 'w-3', 'w-4']), 1350).windowMs, 250);
});
