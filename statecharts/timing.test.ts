import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fenceDelayMs, fleetTiming, labTiming, testTiming, validateTiming } from './timing.ts';

test('every named profile is valid', () => {
  for (const t of [fleetTiming, labTiming, testTiming]) assert.deepEqual(validateTiming(t), []);
});

test('the fleet profile rides out a 1.5 s loss burst: followers with two heartbeats to spare, the leader with four', () => {
  const t = fleetTiming;
  assert.ok(t.electionTimeoutMinMs >= 1500 + 2 * t.heartbeatMs);
  // The leader's freshest echo may be an answer interval old when the burst starts.
  assert.ok(t.leaderLeaseMs >= 1500 + t.ackIntervalMs + 4 * t.heartbeatMs);
});

test('the answer interval must lie between a heartbeat and a fifth of the election timeout', () => {
  for (const ackIntervalMs of [fleetTiming.heartbeatMs - 1, fleetTiming.electionTimeoutMinMs / 5 + 1]) {
    const problems = validateTiming({ ...fleetTiming, ackIntervalMs });
    assert.ok(
      problems.some((p) => p.startsWith('ackIntervalMs') && p.includes('heartbeatMs')),
      problems.join('\n'),
    );
  }
  assert.deepEqual(validateTiming({ ...fleetTiming, ackIntervalMs: fleetTiming.heartbeatMs }), []);
});

test('an election timeout below k heartbeats is rejected with a sentence naming both fields', () => {
  const problems = validateTiming({
    ...fleetTiming,
    electionTimeoutMinMs: 300,
    electionTimeoutMaxMs: 400,
    bootElectionTimeoutMs: 250,
  });
  assert.ok(
    problems.some((p) => p.includes('electionTimeoutMinMs') && p.includes('heartbeatMs')),
    problems.join('\n'),
  );
});

test('all problems are reported at once', () => {
  const problems = validateTiming({
    ...fleetTiming,
    heartbeatMs: -1,
    electionTimeoutMaxMs: 1,
    fitnessBias: 2,
    maxEntryBytes: 5000,
  });
  assert.ok(problems.length >= 4, problems.join('\n'));
});

test('learner heartbeats must be a whole multiple of voter heartbeats', () => {
  assert.ok(
    validateTiming({ ...fleetTiming, learnerHeartbeatMs: 250 }).some((p) => p.includes('learnerHeartbeatMs')),
  );
});

test('the fence delay covers the lease beyond the stickiness window, a heartbeat and timer slack', () => {
  const t = fleetTiming;
  assert.equal(fenceDelayMs(t), t.leaderLeaseMs - t.electionTimeoutMinMs + t.heartbeatMs + t.timerSlackMs);
  assert.ok(
    validateTiming({ ...t, leaderLeaseMs: t.electionTimeoutMinMs - 1 }).some((p) =>
      p.includes('leaderLeaseMs'),
    ),
  );
});
