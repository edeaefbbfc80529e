import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBelow, randomUint32 } from './random.ts';

test('randomUint32 draws 32-bit integers from the kernel', () => {
  const draws = Array.from({ length: 200 }, randomUint32);
  for (const x of draws) assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32, String(x));
  // 200 draws of 32 bits: a repeat is a broken source (odds about 5e-6), and so is no high bit.
  assert.equal(new Set(draws).size, draws.length);
  assert.ok(draws.some((x) => x >= 2 ** 31));
});

test('randomBelow stays in [0, n), reaches every value of a small range, and refuses a bad n', () => {
  assert.equal(randomBelow(1), 0);
  const seen = new Set<number>();
  for (let i = 0; i < 400; i++) {
    const x = randomBelow(6);
    assert.ok(Number.isInteger(x) && x >= 0 && x < 6);
    seen.add(x);
  }
  assert.deepEqual([...seen].sort(), [0, 1, 2, 3, 4, 5]);
  for (let i = 0; i < 100; i++) assert.ok(randomBelow(2 ** 31) < 2 ** 31);
  for (const bad of [0, -1, 1.5, 2 ** 32 + 1, Number.NaN]) assert.throws(() => randomBelow(bad), RangeError);
});
