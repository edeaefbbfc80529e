/**
 * Property tests of the election over random schedules that stress the clock: robots frozen (SIGSTOP)
 * for less or more than the stickiness window, with small socket buffers that overflow while frozen,
 * power loss and restarts from durable state, and leadership transfers racing with all of that.
 *
 * Same properties, bound and replay as election.property.test.ts (whose schedule machinery this
 * reuses); this file is separate so that Node's test runner runs the two halves of the default 10,000
 * schedules on two cores. EDGECTL_PROPERTY_RUNS sets the number of schedules of this file.
 */
import { test } from 'node:test';
import fc from 'fast-check';
import {
  GENERAL_SHAPE,
  TIMING,
  checkSchedules,
  formatStats,
  isTestEntry,
  rawFaultArb,
  runsFromEnv,
  scheduleArb,
  type RawFault,
  type ScheduleShape,
} from './election.property.test.ts';

/** Freeze lengths: within the stickiness window (a leader rides it out), or well beyond it (failover). */
const freeze = fc.oneof(
  { weight: 2, arbitrary: fc.integer({ min: 1, max: TIMING.electionTimeoutMinMs - 1 }) },
  {
    weight: 2,
    arbitrary: fc.integer({ min: TIMING.electionTimeoutMinMs, max: 4 * TIMING.electionTimeoutMaxMs }),
  },
  { weight: 1, arbitrary: fc.constant(null) }, // frozen until the heal
);
const at = fc.integer({ min: 0, max: 999 });
const target = fc.integer({ min: -1, max: 6 });
const pause: fc.Arbitrary<RawFault> = fc.record({
  kind: fc.constant('pause' as const),
  at,
  target,
  undoAfterMs: freeze,
});
const kill: fc.Arbitrary<RawFault> = fc.record({
  kind: fc.constant('kill' as const),
  at,
  target,
  undoAfterMs: freeze,
});

export const PAUSE_SHAPE: ScheduleShape = {
  faults: [
    { weight: 6, arbitrary: pause },
    { weight: 3, arbitrary: kill },
    { weight: 3, arbitrary: rawFaultArb.transfer },
    { weight: 2, arbitrary: rawFaultArb.reviveAll },
    { weight: 1, arbitrary: rawFaultArb.burst },
    { weight: 1, arbitrary: rawFaultArb.isolate },
    { weight: 1, arbitrary: rawFaultArb.heal },
  ],
  maxFaults: 10,
  healAtMs: GENERAL_SHAPE.healAtMs,
  // Small buffers lose datagrams while frozen, as a full Linux socket buffer does.
  pausedQueueLimit: fc.oneof(fc.constant(null), fc.integer({ min: 1, max: 64 })),
};

export const DEFAULT_PAUSE_RUNS = 5000;

if (isTestEntry(import.meta.filename)) {
  test('election under pauses, restarts and transfers: safety, durability and a single leader after healing', (t) => {
    const runs = runsFromEnv(DEFAULT_PAUSE_RUNS);
    const stats = checkSchedules('pause/clock faults', scheduleArb(PAUSE_SHAPE), runs, import.meta.filename);
    const line = formatStats('pause/clock faults', stats);
    t.diagnostic(line);
    console.log(line);
  });
}
