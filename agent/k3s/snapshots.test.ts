import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  chooseServerStart,
  compareSnapshots,
  newestVerified,
  parseSha256sum,
  savedSnapshotFile,
  snapshotName,
  snapshotsToPrune,
  type HeldSnapshot,
  type SnapshotRecord,
} from './snapshots.ts';

const sha = (c: string) => c.repeat(64).slice(0, 64);
function rec(name: string, epoch: number, term: number, createdAt: number, s = sha('a')): SnapshotRecord {
  return { v: 1, name, node: 'r2', epoch, term, sha256: s, size: 1000 + epoch, createdAt };
}
function held(r: SnapshotRecord, s = r.sha256): HeldSnapshot {
  return { name: r.name, path: `/var/lib/edgectl/snapshots/received/${r.name}`, sha256: s, size: r.size };
}

describe('chooseServerStart', () => {
  const e4 = rec('e4', 4, 9, 100);
  const e6 = rec('e6', 6, 12, 50);
  // prettier-ignore
  const cases: Array<[string, Parameters<typeof chooseServerStart>[0], string]> = [
    ['a site\'s first server starts fresh',            { records: [], held: [], lastServedEpoch: null, hasLocalDb: false }, 'fresh'],
    ['no local etcd: restore the newest held',         { records: [e4, e6], held: [held(e4), held(e6)], lastServedEpoch: null, hasLocalDb: false }, 'restore e6'],
    ['local etcd newer than every snapshot: resume',   { records: [e4], held: [held(e4)], lastServedEpoch: 5, hasLocalDb: true }, 'resume'],
    ['a snapshot of my own last epoch: resume',        { records: [e4], held: [held(e4)], lastServedEpoch: 4, hasLocalDb: true }, 'resume'],
    ['a snapshot of a later epoch: restore',           { records: [e4, e6], held: [held(e4), held(e6)], lastServedEpoch: 5, hasLocalDb: true }, 'restore e6'],
    ['served once, but etcd is gone: restore',         { records: [e4], held: [held(e4)], lastServedEpoch: 5, hasLocalDb: false }, 'restore e4'],
    ['a corrupt copy is never chosen',                 { records: [e4, e6], held: [held(e4), held(e6, sha('f'))], lastServedEpoch: null, hasLocalDb: false }, 'restore e4'],
    ['a file no record names is not a snapshot',       { records: [e4], held: [held(e6)], lastServedEpoch: null, hasLocalDb: false }, 'fresh'],
    ['an unrecorded newer file does not beat etcd',    { records: [], held: [held(e6)], lastServedEpoch: 3, hasLocalDb: true }, 'resume'],
  ];
  for (const [name, input, want] of cases) {
    test(name, () => {
      const got = chooseServerStart(input);
      assert.equal(got.kind === 'restore' ? `restore ${got.record.name}` : got.kind, want, got.reason);
    });
  }

  test('newest is by epoch, then term, then createdAt', () => {
    const a = rec('a', 5, 7, 900);
    const b = rec('b', 5, 8, 100);
    const c = rec('c', 6, 1, 1);
    const d = rec('d', 6, 1, 2);
    assert.deepEqual(
      [d, c, b, a].sort(compareSnapshots).map((r) => r.name),
      ['a', 'b', 'c', 'd'],
    );
    assert.equal(newestVerified([a, b, c, d], [held(a), held(b), held(c), held(d)])?.record.name, 'd');
  });

  test('property: a restore is always of a held, verified record, and none verified is newer', () => {
    const recordArb = fc.record({
      name: fc.constantFrom('s1', 's2', 's3', 's4', 's5'),
      epoch: fc.integer({ min: 0, max: 6 }),
      term: fc.integer({ min: 0, max: 6 }),
      createdAt: fc.integer({ min: 0, max: 100 }),
      sha: fc.constantFrom('a', 'b'),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(recordArb, { selector: (r) => r.name, maxLength: 5 }),
        fc.array(
          fc.record({ name: fc.constantFrom('s1', 's2', 's3', 's4', 's5'), sha: fc.constantFrom('a', 'b') }),
          { maxLength: 5 },
        ),
        fc.option(fc.integer({ min: 0, max: 6 }), { nil: null }),
        fc.boolean(),
        (rs, hs, lastServedEpoch, hasLocalDb) => {
          const records = rs.map((r) => rec(r.name, r.epoch, r.term, r.createdAt, sha(r.sha)));
          const files = hs.map((h) => {
            const r = records.find((x) => x.name === h.name);
            return { name: h.name, path: `/x/${h.name}`, sha256: sha(h.sha), size: r?.size ?? 0 };
          });
          const verified = records.filter((r) =>
            files.some((f) => f.name === r.name && f.sha256 === r.sha256 && f.size === r.size),
          );
          const oracle = [...verified].sort(compareSnapshots).at(-1);
          const got = chooseServerStart({ records, held: files, lastServedEpoch, hasLocalDb });
          const served = hasLocalDb ? lastServedEpoch : null;
          if (got.kind === 'restore') {
            assert.ok(verified.includes(got.record));
            assert.equal(got.record, oracle);
            assert.ok(served === null || got.record.epoch > served);
          } else if (oracle) {
            assert.equal(got.kind, 'resume');
            assert.ok(served !== null && oracle.epoch <= served);
          } else {
            assert.equal(got.kind, served === null ? 'fresh' : 'resume');
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('snapshot files', () => {
  test('snapshotName carries site, epoch and term', () => {
    assert.equal(snapshotName('harbor', 5, 11), 'edgectl-harbor-e5-t11');
  });

  test('savedSnapshotFile finds the file k3s wrote for a name on this node, the latest if several', () => {
    const listing = [
      'edgectl-harbor-e5-t1-r1-1700000000',
      'edgectl-harbor-e5-t11-r1-1700000300',
      'edgectl-harbor-e5-t1-r1-1700000200.zip',
      'edgectl-harbor-e5-t1-r2-1700000900',
      'etcd-snapshot-r1-1700000100',
      'edgectl-harbor-e5-t1-r1-notanumber',
    ];
    assert.equal(
      savedSnapshotFile(listing, 'edgectl-harbor-e5-t1', 'r1'),
      'edgectl-harbor-e5-t1-r1-1700000200.zip',
    );
    assert.equal(
      savedSnapshotFile(listing, 'edgectl-harbor-e5-t11', 'r1'),
      'edgectl-harbor-e5-t11-r1-1700000300',
    );
    assert.equal(savedSnapshotFile(listing, 'edgectl-harbor-e6-t1', 'r1'), null);
  });

  test('parseSha256sum reads the digest of `sha256sum FILE`', () => {
    assert.equal(parseSha256sum(`${sha('c')}  /x/y\n`), sha('c'));
    assert.equal(parseSha256sum('sha256sum: /x: No such file or directory'), null);
  });

  test('snapshotsToPrune keeps the files of the newest records and drops the rest', () => {
    const rs = [rec('a', 1, 1, 1), rec('b', 2, 1, 1), rec('c', 3, 1, 1)];
    const files = [
      ...rs.map((r) => held(r)),
      { name: 'partial', path: '/x/partial', sha256: sha('0'), size: 1 },
    ];
    assert.deepEqual(
      snapshotsToPrune(rs, files, 2).map((h) => h.name),
      ['a', 'partial'],
    );
  });
});
