import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LogEntry } from '../../statecharts/messages.ts';
import { entryBytes } from '../../statecharts/site-log.ts';
import {
  committedSpecs,
  diffSpecs,
  formatChange,
  highestSpecVersion,
  newestCommittedSpec,
  specDigest,
  specEntries,
} from './spec-log.ts';

const AT = '2026-12-06T06:00:00.000Z';
const spec = (pods: string, extra = '') =>
  JSON.stringify({ id: 'lab', quota: { hard: { pods, 'requests.cpu': '8' } }, note: `é€😀${extra}` });
const run = (term: number, version: number, text: string, max = 200): LogEntry[] =>
  specEntries(version, text, AT, max).map((data) => ({ term, kind: 'site', data }));
const noop = (term: number): LogEntry => ({ term, kind: 'noop', data: '' });

test('a spec is cut into parts of at most maxEntryBytes and reassembled byte for byte', () => {
  const text = spec('100', 'x'.repeat(900));
  for (const max of [120, 200, 800]) {
    const entries = run(3, 4, text, max);
    assert.ok(entries.length > 2);
    for (const e of entries) assert.ok(entryBytes(e) <= max, `${entryBytes(e)} > ${max}`);
    const log = [noop(3), ...entries];
    const v = newestCommittedSpec(log, log.length);
    assert.deepEqual(v, {
      version: 4,
      term: 3,
      index: log.length,
      digest: specDigest(text),
      at: AT,
      text,
    });
  }
});

test('a version counts only once its manifest is committed', () => {
  const log = [noop(1), ...run(1, 1, spec('100')), noop(2), ...run(2, 2, spec('50'))];
  assert.equal(newestCommittedSpec(log, log.length)?.version, 2);
  // Every part of version 2 committed, its manifest not: version 1 is still the newest.
  assert.equal(newestCommittedSpec(log, log.length - 1)?.version, 1);
  assert.deepEqual(
    committedSpecs(log, log.length).map((v) => v.version),
    [1, 2],
  );
  assert.equal(highestSpecVersion(log), 2);
});

test('parts cut short by a leader change never make a version, even with a later manifest', () => {
  const v2 = run(2, 2, spec('50', 'y'.repeat(300)));
  const v2b = run(3, 2, spec('70'));
  assert.ok(v2.length >= 3, 'version 2 has several parts');
  // Term 2 got its parts in but not its manifest; term 3 proposed its own version 2 after them.
  const log = [noop(1), ...run(1, 1, spec('100')), noop(2), ...v2.slice(0, -1), noop(3), ...v2b];
  const versions = committedSpecs(log, log.length);
  assert.deepEqual(
    versions.map((v) => [v.version, v.term, JSON.parse(v.text).quota.hard.pods]),
    [
      [1, 1, '100'],
      [2, 3, '70'],
    ],
  );
  // A manifest whose parts are missing, reordered or altered is no version.
  const m = v2.at(-1)!;
  assert.equal(newestCommittedSpec([noop(2), m], 2), null);
  const swapped = [noop(2), ...v2.slice(0, -1).reverse(), m];
  assert.equal(newestCommittedSpec(swapped, swapped.length), null);
  const altered = [noop(2), ...v2.map((e, i) => (i === 0 ? { ...e, data: e.data.replace('50', '51') } : e))];
  assert.equal(newestCommittedSpec(altered, altered.length), null);
  const otherTerm = [noop(2), ...v2.map((e, i) => (i === 0 ? { ...e, term: 1 } : e))];
  assert.equal(newestCommittedSpec(otherTerm, otherTerm.length), null);
});

test('diffSpecs names each changed leaf', () => {
  const changes = diffSpecs(spec('100'), spec('50', '!')).map(formatChange);
  assert.deepEqual(changes, ['quota.hard.pods: "100" → "50"', 'note: "é€😀" → "é€😀!"']);
  assert.deepEqual(diffSpecs(spec('1'), spec('1')), []);
  assert.deepEqual(diffSpecs(JSON.stringify({ a: 1, b: [1] }), JSON.stringify({ a: 1 })).map(formatChange), [
    'b: [1] → (none)',
  ]);
  assert.equal(diffSpecs(null, spec('1')).length, 1);
});
