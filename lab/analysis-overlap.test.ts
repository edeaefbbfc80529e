import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stepDurations, type FaultEvent, type LogEvent, type RunRecord } from './analysis.ts';

const T = 1_800_000_000_000;
const ev = (t: number, node: string, kind: LogEvent['kind'], extra: Partial<LogEvent> = {}): LogEvent => ({
  t: T + t,
  node,
  term: extra.term ?? 0,
  kind,
  ...extra,
});
const fault = (
  t: number,
  stepId: string,
  applied: string[],
  robots: string[],
  leaderBefore: string,
  termBefore: number,
): FaultEvent => ({
  t: T + t,
  stepId,
  text: applied.join(' '),
  applied,
  robots,
  leaderBefore,
  termBefore,
});

test("all survivors Ready leaves out an earlier fault's victim that is still down", () => {
  // r5 is powered off at 0 s and back only at 40 s; the leader r1 is powered off at 10 s.
  const f2 = fault(10_000, 'kill-leader', ['kill:r1'], ['r1'], 'r1', 2);
  const rec: RunRecord = {
    robots: ['r1', 'r2', 'r3', 'r4', 'r5'],
    voters: ['r1', 'r2', 'r3'],
    t0: T,
    tEnd: T + 60_000,
    faults: [
      fault(0, 'worker-off', ['kill:r5'], ['r5'], 'r1', 2),
      f2,
      fault(40_000, 'worker-on', ['restart:r5'], ['r5'], 'r2', 3),
    ],
    observations: [],
    logs: {
      r2: [
        ev(11_000, 'r2', 'role', { role: 'leader', term: 3 }),
        ev(13_000, 'r2', 'serving', { epoch: 3, term: 3 }),
      ],
      r3: [ev(16_000, 'r3', 'ready', { leader: 'r2', epoch: 3, term: 3 })],
      r4: [ev(16_800, 'r4', 'ready', { leader: 'r2', epoch: 3, term: 3 })],
      r5: [ev(48_000, 'r5', 'ready', { leader: 'r2', epoch: 3, term: 3 })],
    },
    final: null,
  };
  const d = stepDurations(rec, f2);
  assert.equal(d.newLeader, 'r2');
  assert.equal(d.allReadyMs, 6800, 'r5 was down before the leader fault: it is no survivor of it');
});
