import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGolden } from '../site/golden.ts';
import { formatPlan } from './execute.ts';
import { datastoreDir, datastoreStartPlan } from './replica-plans.ts';
import { REVISION_BUMP, REVISION_BUMP_BIN, revisionBumpStep, withRevisionBump } from './revision-bump.ts';

const testdata = new URL('./testdata/', import.meta.url).pathname;

test('the revision bump after a restore, as the robot runs it (golden)', () => {
  const text = formatPlan('r2 restored epoch 8: its revision moves forward', {
    target: 'r2',
    steps: [revisionBumpStep(datastoreDir(8))],
  });
  assertGolden(`${testdata}revision-bump.golden.txt`, text);
});

test('the bump is the fixed large one, on the restored data dir, with nothing skipped', () => {
  const step = revisionBumpStep('/var/lib/edgectl/etcd/epoch-3');
  assert.equal(step.kind, 'run');
  if (step.kind !== 'run') return;
  assert.deepEqual(step.argv, [
    REVISION_BUMP_BIN,
    '--data-dir=/var/lib/edgectl/etcd/epoch-3',
    `--by=${REVISION_BUMP}`,
  ]);
  // No `unless`: a data dir that exists may still lack its bump (a plan interrupted after the
  // restore); the tool itself refuses to bump twice.
  assert.equal(step.unless, undefined);
  // Far beyond what a leader can issue while fenced, and many takeovers fit in a safe integer.
  assert.ok(REVISION_BUMP >= 1e9 && Number.MAX_SAFE_INTEGER / REVISION_BUMP > 1e6);
});

test('a relative path or a bad amount is refused', () => {
  assert.throws(() => revisionBumpStep('etcd/epoch-3'), { code: 'EDGE_BAD_DATA_DIR' });
  assert.throws(() => revisionBumpStep('/var/lib/x y'), { code: 'EDGE_BAD_DATA_DIR' });
  assert.throws(() => revisionBumpStep('/var/lib/x', 0), { code: 'EDGE_BAD_REVISION_BUMP' });
  assert.throws(() => revisionBumpStep('/var/lib/x', 1.5), { code: 'EDGE_BAD_REVISION_BUMP' });
});

test('in a takeover plan the bump runs right after the restore and before etcd starts; nothing restored, nothing bumped', () => {
  const R2 = { id: 'r2', host: '10.20.0.12' };
  for (const source of [
    { kind: 'replica', epoch: 7 } as const,
    { kind: 'snapshot', path: '/var/lib/edgectl/snapshots/s.db', sha256: 'ab'.repeat(32) } as const,
  ]) {
    const plan = datastoreStartPlan(R2, 8, source);
    const ids = withRevisionBump(plan, datastoreDir(8)).steps.map((s) => s.id);
    assert.equal(ids.indexOf('revision-bump'), ids.indexOf('restore') + 1);
    assert.equal(ids.length, plan.steps.length + 1);
    assert.ok(ids.indexOf('revision-bump') < ids.indexOf('start-edgectl-etcd'));
  }
  const empty = datastoreStartPlan(R2, 8, { kind: 'empty' });
  assert.equal(withRevisionBump(empty, datastoreDir(8)), empty);
});
