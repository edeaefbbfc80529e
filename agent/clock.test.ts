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

test('isoTime and httpDate write what toISOString and toUTCString write, for every valid time', () => {
  const pairs: [(ms: number) => string, (d: Date) => string][] = [
    [isoTime, (d) => d.toISOString()],
    [httpDate, (d) => d.toUTCString()],
  ];
  const edges = [
    0, -1, 1, 253402300799999, 253402300800000, -62167219200000, -62167219200001, 8.64e15, -8.64e15,
  ];
  for (const [ours, v8] of pairs) {
    for (const ms of edges) assert.equal(ours(ms), v8(new Date(ms)), `${ours.name}(${ms})`);
    // The whole range, and the years a robot's clock will show.
    for (const max of [8.64e15, 4102444800000])
      fc.assert(
        fc.property(fc.integer({ min: max === 8.64e15 ? -max : 0, max }), (ms) => {
          assert.equal(ours(ms), v8(new Date(ms)));
        }),
        { numRuns: 20_000 },
      );
  }
});

test('logTimestamp is the "time" field pino splices into each line', () => {
  const field = logTimestamp();
  const parsed = JSON.parse(`{"level":30${field}}`) as { time: string };
  assert.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.equal(new Date(parsed.time).toISOString(), parsed.time);
});
