import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LogEntry } from '../../statecharts/messages.ts';
import { membersDigest, membersText, newestCommittedMembers, parseMembersText } from './members.ts';
import { highestSpecVersion, newestCommittedSpec, specDigest, specEntries } from './spec-log.ts';

const AT = '2026-12-06T06:00:00.000Z';
const run = (term: number, version: number, text: string, doc: 'site' | 'members', max = 200): LogEntry[] =>
  specEntries(version, text, AT, max, doc).map((data) => ({ term, kind: 'site', data }));
const noop = (term: number): LogEntry => ({ term, kind: 'noop', data: '' });

test('a membership is canonical: sorted, unique; only that form parses', () => {
  assert.equal(membersText(['vac-2', 'vac-1', 'vac-2']), '{"workers":["vac-1","vac-2"]}');
  assert.deepEqual(parseMembersText('{"workers":["vac-1","vac-2"]}'), ['vac-1', 'vac-2']);
  assert.equal(parseMembersText('{"workers":["vac-2","vac-1"]}'), null);
  assert.equal(parseMembersText('{"workers":["Not An Id"]}'), null);
  assert.equal(parseMembersText('{"workers":"vac-1"}'), null);
  assert.equal(parseMembersText('nope'), null);
  assert.equal(membersDigest(['b', 'a']), specDigest('{"workers":["a","b"]}'));
});

test('the newest committed membership counts; an uncommitted one does not', () => {
  const v1 = run(2, 1, membersText(['vac-1']), 'members');
  const v2 = run(3, 2, membersText(['vac-1', 'vac-2']), 'members');
  const log = [noop(2), ...v1, noop(3), ...v2];
  const all = newestCommittedMembers(log, log.length);
  assert.equal(all?.version, 2);
  assert.deepEqual(all?.workers, ['vac-1', 'vac-2']);
  assert.equal(newestCommittedMembers(log, log.length - 1)?.version, 1);
  assert.equal(newestCommittedMembers(log, 1), null);
});

test('a long membership spans several entries of at most maxEntryBytes', () => {
  const workers = Array.from({ length: 120 }, (_, i) => `vacuum-robot-${String(i).padStart(3, '0')}`);
  const entries = run(4, 1, membersText(workers), 'members', 800);
  assert.ok(entries.length > 1);
  const log = [noop(4), ...entries];
  assert.deepEqual(newestCommittedMembers(log, log.length)?.workers, workers);
});

test('membership and site spec versions never count as each other', () => {
  const spec = JSON.stringify({ id: 'lab' });
  const log = [noop(1), ...run(1, 1, spec, 'site'), ...run(1, 1, membersText(['vac-1']), 'members')];
  assert.equal(newestCommittedSpec(log, log.length)?.text, spec);
  assert.deepEqual(newestCommittedMembers(log, log.length)?.workers, ['vac-1']);
  assert.equal(highestSpecVersion(log), 1);
  assert.equal(highestSpecVersion(log, 'members'), 1);
  const onlySpec = [noop(1), ...run(1, 3, spec, 'site')];
  assert.equal(newestCommittedMembers(onlySpec, onlySpec.length), null);
  assert.equal(highestSpecVersion(onlySpec, 'members'), 0);
});
