import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evaluate, heard, nodeLossChanges, type MembershipView } from './membership.ts';

const cfg = { suspectAfterMs: 3000, deadAfterMs: 10_000 };

test('a peer goes alive → suspect → dead as it stays silent, and back to alive when heard', () => {
  let v: MembershipView = new Map();
  const first = heard(v, 'r2', 0, 12);
  v = first.view;
  assert.deepEqual(first.change, { id: 'r2', from: null, to: 'alive', atMs: 0 });
  let r = evaluate(v, 2999, cfg);
  assert.deepEqual(r.changes, []);
  r = evaluate(v, 3000, cfg);
  assert.deepEqual(
    r.changes.map((c) => c.to),
    ['suspect'],
  );
  v = r.view;
  r = evaluate(v, 10_000, cfg);
  assert.deepEqual(
    r.changes.map((c) => `${c.from}->${c.to}`),
    ['suspect->dead'],
  );
  v = r.view;
  const back = heard(v, 'r2', 12_000);
  assert.equal(back.change?.from, 'dead');
  assert.equal(back.view.get('r2')!.state, 'alive');
});

test('a one-second dead spot makes a robot neither suspect nor dead', () => {
  let v: MembershipView = heard(new Map(), 'r3', 0).view;
  for (let t = 100; t < 60_000; t += 100) {
    if (t % 5000 < 1000) continue; // silent for 1 s every 5 s
    v = heard(v, 'r3', t).view;
    assert.deepEqual(evaluate(v, t, cfg).changes, []);
  }
});

test('round-trip times are smoothed', () => {
  let v: MembershipView = heard(new Map(), 'r2', 0, 10).view;
  v = heard(v, 'r2', 100, 90).view;
  assert.equal(v.get('r2')!.rttMs, 20);
  v = heard(v, 'r2', 200).view;
  assert.equal(v.get('r2')!.rttMs, 20);
});

test('evaluate on an unchanged view returns the same view', () => {
  const v = heard(new Map(), 'r2', 0).view;
  assert.equal(evaluate(v, 10, cfg).view, v);
});

test('nodeLossChanges: lost after the grace period once, returned when heard again', () => {
  const cfg = { suspectAfterMs: 1000, deadAfterMs: 3000 };
  let v = heard(new Map(), 'r2', 0).view;
  v = heard(v, 'r3', 0).view;
  v = evaluate(v, 4000, cfg).view;
  assert.deepEqual(nodeLossChanges(v, 4000, 60_000, new Set()), { lost: [], returned: [] });
  assert.deepEqual(nodeLossChanges(v, 60_000, 60_000, new Set()), { lost: ['r2', 'r3'], returned: [] });
  assert.deepEqual(nodeLossChanges(v, 60_000, 60_000, new Set(['r2'])), { lost: ['r3'], returned: [] });
  v = heard(v, 'r2', 61_000).view;
  assert.deepEqual(nodeLossChanges(v, 61_000, 60_000, new Set(['r2', 'r3'])), { lost: [], returned: ['r2'] });
});
