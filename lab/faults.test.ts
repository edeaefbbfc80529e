import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EdgeError } from '../agent/errors.ts';
import { faultTargets, formatFault, parseDuration, parseFault, parseTimedFault } from './faults.ts';

test('durations take ms, s, m and h', () => {
  assert.equal(parseDuration('200ms'), 200);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('2m'), 120_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('0'), 0);
  assert.throws(() => parseDuration('75'), /has no unit[\s\S]*/);
  assert.throws(() => parseDuration('1e309s'), /too long/);
});

test('the issue examples parse', () => {
  assert.deepEqual(parseTimedFault('kill-leader@20s'), {
    atMs: 20_000,
    fault: { kind: 'kill', node: 'leader' },
  });
  assert.deepEqual(parseTimedFault('partition:r1,r2/r3,r4,r5@60s'), {
    atMs: 60_000,
    fault: {
      kind: 'partition',
      groups: [
        ['r1', 'r2'],
        ['r3', 'r4', 'r5'],
      ],
    },
  });
  assert.deepEqual(parseTimedFault('heal@80s'), { atMs: 80_000, fault: { kind: 'heal' } });
});

test('every fault formats back to what parses to it', () => {
  for (const spec of [
    'drop:r1->r2=0.3',
    'cut:r1,r2',
    'isolate:leader',
    'partition:a,b/c',
    'heal',
    'burst:1500ms',
    'kill:r3',
    'restart:r3',
    'pause:r2',
    'resume:r2',
    'transfer',
    'transfer:r4',
  ]) {
    assert.equal(formatFault(parseFault(spec)), spec);
  }
});

test('bad faults are refused with a hint that shows the right form', () => {
  const cases: [string, RegExp][] = [
    ['explode:r1', /use one of/],
    ['partition:r1', /partition:<a,b>\/<c,d,e>/],
    ['partition:r1/r1', /each robot appears once/],
    ['drop:r1->r2=1.5', /between 0 and 1/],
    ['cut:r1', /cut:<a>,<b>/],
    ['kill:R1!', /robot names are lower-case/],
  ];
  for (const [spec, hint] of cases) {
    assert.throws(
      () => parseFault(spec),
      (e: unknown) => e instanceof EdgeError && hint.test(`${e.message} ${e.hint}`),
      spec,
    );
  }
  assert.throws(() => parseTimedFault('heal'), /has no time/);
  assert.throws(() => parseDuration('soon'), /not a duration/);
});

test('faultTargets lists the robots a fault names', () => {
  assert.deepEqual(faultTargets(parseFault('partition:a,b/c')), ['a', 'b', 'c']);
  assert.deepEqual(faultTargets(parseFault('heal')), []);
  assert.deepEqual(faultTargets(parseFault('drop:x->y=0.1')), ['x', 'y']);
});
