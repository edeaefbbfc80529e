/**
 * The steps of a leader's start reach `lab status` and bench:rpo as flat status details: the
 * replica and snapshot takeovers are compared step by step from these.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startStepDetails } from './lab-control-plane.ts';

test('a start from a replica reports every step, rounded to ms, under start.*', () => {
  assert.deepEqual(
    startStepDetails({
      stopReplicasMs: 9.6,
      restoreMs: 22.4,
      bumpMs: 25.5,
      apiServerColdStartMs: 2310.2,
      startApiServerMs: 2371.9,
      discardReplicasMs: 3.1,
      registerMs: 41.7,
      totalMs: 2426.3,
    }),
    {
      'start.stopReplicasMs': 10,
      'start.restoreMs': 22,
      'start.bumpMs': 26,
      'start.apiServerColdStartMs': 2310,
      'start.startApiServerMs': 2372,
      'start.discardReplicasMs': 3,
      'start.registerMs': 42,
      'start.totalMs': 2426,
    },
  );
});

test('a start that restored nothing reports its restore and bump as not run, and no start reports nothing', () => {
  const d = startStepDetails({
    stopReplicasMs: 0,
    restoreMs: null,
    bumpMs: null,
    apiServerColdStartMs: 1800,
    startApiServerMs: 1850,
    discardReplicasMs: 0,
    registerMs: 30,
    totalMs: 1880,
  });
  assert.equal(d['start.restoreMs'], null);
  assert.equal(d['start.bumpMs'], null);
  assert.deepEqual(startStepDetails(null), {});
});
