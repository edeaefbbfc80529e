import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  defaultLifecycleTiming,
  phaseOf,
  startLifecycle,
  stepLifecycle,
  type LifecycleEffect,
  type LifecycleEvent,
  type LifecycleSnapshot,
} from './node.ts';

function run(events: LifecycleEvent[]): { snapshot: LifecycleSnapshot; effects: LifecycleEffect[][] } {
  let { snapshot } = startLifecycle({ self: 'a', now: 0 });
  const effects: LifecycleEffect[][] = [];
  for (const e of events) {
    const r = stepLifecycle(snapshot, e);
    snapshot = r.snapshot;
    effects.push(r.effects);
  }
  return { snapshot, effects };
}
const kinds = (e: LifecycleEffect[]) =>
  e.filter((x) => x.kind !== 'armTimer' && x.kind !== 'disarmTimer').map((x) => x.kind);

test('a robot that wins starts its server, applies the site and serves', () => {
  const r = run([
    { type: 'election.startServer', epoch: 3, now: 10 },
    { type: 'cp.serverReady', epoch: 3, now: 20 },
    { type: 'cp.siteApplied', epoch: 3, now: 30 },
  ]);
  assert.equal(phaseOf(r.snapshot), 'leading.serving');
  assert.deepEqual(kinds(r.effects[0]!), ['resetWorker', 'startControlPlane']);
  assert.deepEqual(kinds(r.effects[1]!), ['applySite']);
});

test('a failed or timed-out step is a state with a back-off retry, never an exception', () => {
  const r = run([
    { type: 'election.startServer', epoch: 3, now: 10 },
    { type: 'cp.serverFailed', epoch: 3, error: 'port busy', now: 20 },
  ]);
  assert.equal(phaseOf(r.snapshot), 'leading.serverRetry');
  assert.equal(r.snapshot.context.lastError, 'port busy');
  const arm = r.effects[1]!.find((e) => e.kind === 'armTimer');
  assert.ok(
    arm &&
      arm.kind === 'armTimer' &&
      arm.id === 'retry' &&
      arm.delayMs === defaultLifecycleTiming.retryMinMs * 2,
  );
  const again = stepLifecycle(r.snapshot, { type: 'retry', now: 2_100 });
  assert.equal(phaseOf(again.snapshot), 'leading.startingServer');
  const timedOut = stepLifecycle(again.snapshot, { type: 'stepTimeout', now: 200_000 });
  assert.equal(phaseOf(timedOut.snapshot), 'leading.serverRetry');
  assert.match(timedOut.snapshot.context.lastError ?? '', /stepTimeout/);
});

test('results from an older epoch are ignored', () => {
  const r = run([
    { type: 'election.startServer', epoch: 4, now: 10 },
    { type: 'cp.serverReady', epoch: 3, now: 20 },
  ]);
  assert.equal(phaseOf(r.snapshot), 'leading.startingServer');
});

test('a higher term stops the server at once and the robot rejoins as a worker', () => {
  const r = run([
    { type: 'election.startServer', epoch: 3, now: 10 },
    { type: 'cp.serverReady', epoch: 3, now: 20 },
    { type: 'election.stopServer', epoch: 3, now: 30 },
    { type: 'election.leader', leader: 'b', term: 4, now: 31 },
    { type: 'cp.stopped', epoch: 3, now: 40 },
  ]);
  assert.deepEqual(kinds(r.effects[2]!), ['stopControlPlane', 'resetWorker']);
  assert.equal(phaseOf(r.snapshot), 'following.joining');
  assert.deepEqual(r.snapshot.context.joined, { leader: 'b', epoch: 4 });
});

test('a follower rejoins when the leader or term changes, and recovers while there is none', () => {
  const r = run([
    { type: 'election.leader', leader: 'b', term: 1, now: 1 },
    { type: 'cp.workerReady', leader: 'b', epoch: 1, now: 5 },
    { type: 'election.leader', leader: null, term: 2, now: 10 },
    { type: 'election.leader', leader: 'c', term: 2, now: 20 },
  ]);
  assert.equal(phaseOf(r.snapshot), 'following.joining');
  assert.deepEqual(kinds(r.effects[2]!), []);
  assert.deepEqual(kinds(r.effects[3]!), ['joinControlPlane']);
  const same = stepLifecycle(r.snapshot, { type: 'election.leader', leader: 'c', term: 2, now: 21 });
  assert.deepEqual(kinds(same.effects), [], 'the same leader again is not a rejoin');
});

test('discovery ends when peers are ready or the window passes', () => {
  const { snapshot, effects } = startLifecycle({ self: 'a', now: 0 });
  assert.equal(phaseOf(snapshot), 'discovering');
  assert.ok(
    effects.some(
      (e) =>
        e.kind === 'armTimer' && e.id === 'step' && e.delayMs === defaultLifecycleTiming.discoveryWindowMs,
    ),
  );
  assert.equal(phaseOf(stepLifecycle(snapshot, { type: 'stepTimeout', now: 3000 }).snapshot), 'electing');
  assert.equal(phaseOf(stepLifecycle(snapshot, { type: 'discovery.ready', now: 100 }).snapshot), 'electing');
});

test('a witness follows the election without joining or serving, through leader changes and losses', () => {
  let { snapshot } = startLifecycle({ self: 'w1', witness: true, now: 0 });
  const seen: string[] = [];
  for (const e of [
    { type: 'election.leader', leader: 'r1', term: 1, now: 10 },
    { type: 'election.leader', leader: null, term: 1, now: 20 },
    { type: 'election.leader', leader: 'r2', term: 2, now: 30 },
    { type: 'discovery.ready', now: 40 },
  ] satisfies LifecycleEvent[]) {
    const r = stepLifecycle(snapshot, e);
    snapshot = r.snapshot;
    seen.push(...kinds(r.effects));
  }
  assert.equal(phaseOf(snapshot), 'witnessing');
  assert.equal(snapshot.context.leader, 'r2');
  assert.deepEqual(
    seen.filter((k) => k === 'joinControlPlane' || k === 'startControlPlane'),
    [],
  );
  // Found its leader only after discovery: the same.
  let late = startLifecycle({ self: 'w1', witness: true, now: 0 }).snapshot;
  late = stepLifecycle(late, { type: 'discovery.ready', now: 5 }).snapshot;
  assert.equal(phaseOf(late), 'witnessing');
});
