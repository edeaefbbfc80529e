/**
 * The election with datastore replica positions in play (docs/k3s.md "Replication"): every robot
 * reports a random, fixed replica position at boot, often equal to another's, often older, so the
 * refusal rule (a candidate with the same log and an older replica is refused) and the handover of
 * a new leader to a fresher replica holder run under the general fault schedules. The properties are
 * the general ones: safety, durability, and a single settled leader after healing (no refusal loop,
 * no handover ping-pong).
 */
import { test } from 'node:test';
import fc from 'fast-check';
import {
  GENERAL_SHAPE,
  checkSchedules,
  formatStats,
  isTestEntry,
  runsFromEnv,
  scheduleArb,
} from './election.property.test.ts';

const position = fc.record({
  epoch: fc.integer({ min: 0, max: 2 }),
  revision: fc.integer({ min: 0, max: 3 }),
});

export const DEFAULT_REPLICA_RUNS = 5000;

if (isTestEntry(import.meta.filename)) {
  test('election with replica positions: safety, durability and a single leader after healing', (t) => {
    const arb = scheduleArb(GENERAL_SHAPE).chain((s) =>
      fc
        .array(position, { minLength: s.voters + s.learners, maxLength: s.voters + s.learners })
        .map((replicas) => ({ ...s, replicas })),
    );
    const runs = runsFromEnv(DEFAULT_REPLICA_RUNS);
    const stats = checkSchedules('replica positions', arb, runs, import.meta.filename);
    const line = formatStats('replica positions', stats);
    t.diagnostic(line);
    console.log(line);
  });
}
