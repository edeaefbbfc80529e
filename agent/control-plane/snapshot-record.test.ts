import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { LogEntry } from '../../statecharts/messages.ts';
import { TIMING_PROFILES } from '../../statecharts/timing.ts';
import type { SnapshotRecord } from './runtime.ts';
import {
  checkSnapshotRecord,
  CommittedSnapshots,
  decodeLogRecord,
  encodeLogRecord,
  isSnapshotName,
} from './snapshot-record.ts';

const good: SnapshotRecord = {
  name: 'edgectl-harbor-e4-t4-r2-1700000100',
  epoch: 4,
  from: 'r2',
  sha256: 'a'.repeat(64),
  size: 1004,
  createdAt: '2026-11-22T09:00:00.000Z',
};

test('a valid record passes, as a fresh copy; every bound is checked', () => {
  const r = checkSnapshotRecord(good);
  assert.ok(r.ok);
  assert.deepEqual(r.value, good);
  assert.notEqual(r.value, good);
  // prettier-ignore
  const bad: Array<[string, unknown]> = [
    ['not an object', 'x'],
    ['an array', [good]],
    ['an unknown field', { ...good, extra: 1 }],
    ['a parent name', { ...good, name: '../../etc/cron.d/x' }],
    ['an absolute name', { ...good, name: '/etc/passwd' }],
    ['a hidden name', { ...good, name: '.x' }],
    ['a record-file name', { ...good, name: 'x.json' }],
    ['a long name', { ...good, name: 'x'.repeat(201) }],
    ['an epoch of 2^53', { ...good, epoch: 2 ** 53 }],
    ['a negative epoch', { ...good, epoch: -1 }],
    ['a fractional epoch', { ...good, epoch: 1.5 }],
    ['a string epoch', { ...good, epoch: '4' }],
    ['a bad node', { ...good, from: 'R2/..' }],
    ['a short digest', { ...good, sha256: 'a'.repeat(63) }],
    ['an upper-case digest', { ...good, sha256: 'A'.repeat(64) }],
    ['a huge size', { ...good, size: 2 ** 50 }],
    ['a non-ISO time', { ...good, createdAt: 'yesterday' }],
    ['an impossible time', { ...good, createdAt: '2026-13-45T99:00:00.000Z' }],
  ];
  for (const [what, x] of bad) assert.equal(checkSnapshotRecord(x).ok, false, what);
});

test('a name is accepted only if it is one plain file name', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 40 }), (s) => {
      if (isSnapshotName(s))
        assert.ok(!s.includes('/') && !s.startsWith('.') && s !== '' && !s.includes('\0'));
    }),
    { numRuns: 5_000 },
  );
});

test('a record that fails the checks is never proposed', () => {
  assert.throws(() => encodeLogRecord({ ...good, name: '../x' }), /snapshot record \.\.\/x: name/);
});

test('the largest log record fits one site-log entry', () => {
  const largest = {
    name: `x${'y'.repeat(199)}`,
    epoch: Number.MAX_SAFE_INTEGER,
    from: 'n'.repeat(63),
    sha256: 'f'.repeat(64),
    size: 64 * 1024 ** 3,
    createdAt: '2026-11-22T09:00:00.000Z',
  };
  assert.ok(checkSnapshotRecord(largest).ok);
  const data = encodeLogRecord(largest);
  assert.ok(
    Buffer.byteLength(data) <= Math.min(...Object.values(TIMING_PROFILES).map((t) => t.maxEntryBytes)),
  );
  assert.deepEqual(decodeLogRecord(data), largest);
});

test('the committed snapshot records of a log: valid ones, committed ones, in order, read once', () => {
  const a = { ...good, name: 'a', epoch: 1 };
  const b = { ...good, name: 'b', epoch: 3 };
  const c = { ...good, name: 'c', epoch: 4 };
  const log: LogEntry[] = [
    { term: 1, kind: 'noop', data: '' },
    { term: 1, kind: 'snapshot', data: encodeLogRecord(a) },
    { term: 2, kind: 'site', data: '{}' },
    { term: 2, kind: 'snapshot', data: 'garbage' },
    { term: 2, kind: 'snapshot', data: JSON.stringify({ ...a, name: '../x' }) },
    { term: 3, kind: 'snapshot', data: JSON.stringify({ ...b, keptBy: ['r1', 'r2'] }) },
    { term: 4, kind: 'snapshot', data: encodeLogRecord(c) },
  ];
  const committed = new CommittedSnapshots();
  assert.deepEqual(committed.read(log, 0), []);
  assert.deepEqual(committed.read(log, 6), [a, b]);
  assert.deepEqual(committed.read(log, 7), [a, b, c]);
  assert.deepEqual(committed.read(log, 7), [a, b, c]);
  assert.deepEqual(new CommittedSnapshots().read(log, 100), [a, b, c]);
});
