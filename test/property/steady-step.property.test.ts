/**
 * steadyStep (statecharts/election.ts) handles a settled site's Appends, replies and heartbeats
 * without xstate's interpreter. This checks it against the machine itself: every robot of simulated
 * sites with random faults (the fault campaign's schedules: kills, pauses, partitions, loss bursts,
 * transfers, proposals) steps through a function that runs both on each event and requires the
 * same effects, state value and context whenever steadyStep takes the event. The simulation goes on
 * with the machine's result, so it explores exactly the states the machine reaches.
 *
 * EDGECTL_STEADY_RUNS sets the number of schedules (default 60).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simulator } from '../../lab/sim/simulator.ts';
import {
  machineStep,
  steadyStep,
  type ElectionEvent,
  type ElectionSnapshot,
  type ElectionStep,
} from '../../statecharts/election.ts';
import { simOptionsOf } from '../campaign/run.ts';
import { describeSchedule, generateSchedule } from '../campaign/schedule.ts';

const RUNS = Number(process.env.EDGECTL_STEADY_RUNS ?? 60);
const SEED = 20261202;

test(`steadyStep equals the machine on every event it takes, over ${RUNS} faulty simulated sites`, () => {
  const taken = { append: 0, appendResp: 0, heartbeatTimeout: 0 };
  let events = 0;
  for (let i = 0; i < RUNS; i++) {
    const schedule = generateSchedule(SEED, i);
    const check = (snapshot: ElectionSnapshot, event: ElectionEvent): ElectionStep => {
      events++;
      const reference = machineStep(snapshot, event);
      const fast = steadyStep(snapshot, event);
      if (fast) {
        const where = `schedule ${i} (${describeSchedule(schedule)}), ${snapshot.context.id} in ${JSON.stringify(snapshot.value)}, event ${JSON.stringify(event)}`;
        assert.deepEqual(fast.effects, reference.effects, `effects differ: ${where}`);
        assert.deepEqual(fast.snapshot.value, reference.snapshot.value, `state differs: ${where}`);
        assert.deepEqual(fast.snapshot.context, reference.snapshot.context, `context differs: ${where}`);
        assert.equal(fast.snapshot.status, reference.snapshot.status);
        taken[event.type === 'message' ? (event.msg.type as 'append' | 'appendResp') : 'heartbeatTimeout']++;
      }
      return reference;
    };
    new Simulator({ ...simOptionsOf(schedule), durationMs: schedule.healAtMs + 15_000, step: check }).run();
  }
  const fast = taken.append + taken.appendResp + taken.heartbeatTimeout;
  // Not vacuous: the fast path took each of its kinds, and most of all events (a site is mostly settled).
  assert.ok(
    taken.append > 1000 && taken.appendResp > 1000 && taken.heartbeatTimeout > 100,
    JSON.stringify(taken),
  );
  assert.ok(fast > events / 2, `steadyStep took ${fast} of ${events} events`);
});
