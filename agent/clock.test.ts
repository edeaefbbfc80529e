import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { monotonicMs } from './clock.ts';
import { httpDate, isoTime, logTimestamp } from './wall-clock.ts';

test('monotonicMs counts milliseconds and never goes backwards', async () => {
  const first = monotonicMs();
  let last = first;
  for (let i = 0; i < 10_000; i++) {
    const now = monotonicMs();
    assert.ok(now >= last);
    last = now;
  }
  await new Promise((ok) => setTimeout(ok, 50));
  // Milliseconds, not seconds or nanoseconds: a 50 ms timer moves it by about 50.
  const slept = monotonicMs() - first;
  assert.ok(slept >= 45 && slept < 50_000, `${slept}`);
});

test('isoTime writes what toISOString writes, for every valid time', () => {
  const edges = [
    0, -1, 1, 253402300799999, 253402300800000, -62167219200000, -62167219200001, 8.64e15, -8.64e15,
  ];
  for (const ms of edges) assert.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  fc.assert(
    fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    }),
    { numRuns: 20_000 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4102444800000 }), (ms) => {
      assert.equal(isoTime(ms), new Date(ms).toISOString());
    }),
    { numRuns: 20_000 },
  );
});

test('httpDate writes what toUTCString writes, for every valid time', () => {
  for (const ms of [
    0, -1, 253402300799999, 253402300800000, -62167219200000, -62167219200001, 8.64e15, -8.64e15,
  ])
    assert.equal(httpDate(ms), new Date(ms).toUTCString(), String(ms));
  fc.assert(
    fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
      assert.equal(httpDate(ms), new Date(ms).toUTCString());
    }),
    { numRuns: 20_000 },
  );
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 4102444800000 }), (ms) => {
      assert.equal(httpDate(ms), new Date(ms).toUTCString());
    }),
    { numRuns: 20_000 },
  );
});

test('logTimestamp is the "time" field pino splices into each line', () => {
  const field = logTimestamp();
  const parsed = JSON.parse(`{"level":30${field}}`) as { time: string };
  assert.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(new Date(parsed.time).toISOString(), parsed.time);
});
