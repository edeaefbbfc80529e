import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  compareSnapshots,
  newestVerified,
  parseSha256sum,
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

describe('newestVerified: the snapshot a new leader may restore', () => {
  const e4 = rec('e4', 4, 9, 100);
  const e6 = rec('e6', 6, 12, 50);

  test('the newest held record wins; a corrupt copy or a file no record names never does', () => {
    assert.equal(newestVerified([e4, e6], [held(e4), held(e6)])?.record.name, 'e6');
    assert.equal(newestVerified([e4, e6], [held(e4), held(e6, sha('f'))])?.record.name, 'e4');
    assert.equal(newestVerified([e4], [held(e6)]), null);
    assert.equal(newestVerified([], [held(e6)]), null);
  });

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

  test('property: it is always a held, verified record, and none verified is newer', () => {
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
        (rs, hs) => {
          const records = rs.map((r) => rec(r.name, r.epoch, r.term, r.createdAt, sha(r.sha)));
          const files = hs.map((h) => {
            const r = records.find((x) => x.name === h.name);
            return { name: h.name, path: `/x/${h.name}`, sha256: sha(h.sha), size: r?.size ?? 0 };
          });
          const verified = records.filter((r) =>
            files.some((f) => f.name === r.name && f.sha256 === r.sha256 && f.size === r.size),
          );
          const oracle = [...verified].sort(compareSnapshots).at(-1);
          const got = newestVerified(records, files);
          if (got) assert.ok(verified.includes(got.record));
          assert.equal(got?.record, oracle);
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
