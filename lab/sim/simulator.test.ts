import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fleetTiming, testTiming } from '../../statecharts/timing.ts';
import { parseTimedFault } from '../faults.ts';
import { EventQueue } from './event-queue.ts';
import { Simulator, defaultSimOptions, type SimOptions } from './simulator.ts';
import { percentile } from './stats.ts';

const fleet = (o: Partial<SimOptions>) => ({ ...defaultSimOptions(fleetTiming), ...o });
const faults = (...specs: string[]) => specs.map(parseTimedFault);

test('the event queue pops by time, then in insertion order', () => {
  const q = new EventQueue<string>();
  q.push(5, 'c');
  q.push(1, 'a');
  q.push(5, 'd');
  q.push(1, 'b');
  assert.deepEqual([q.pop()!.item, q.pop()!.item, q.pop()!.item, q.pop()!.item], ['a', 'b', 'c', 'd']);
  assert.equal(q.pop(), undefined);
});

test('percentile uses the nearest rank', () => {
  assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99), 10);
  assert.equal(percentile([], 50), null);
});

test('the same seed gives the same run; another seed a different one', () => {
  const o = fleet({ seed: 9, durationMs: 30_000, lossRate: 0.1, faults: faults('kill-leader@10s') });
  const a = new Simulator(o).run();
  const b = new Simulator(o).run();
  const c = new Simulator({ ...o, seed: 10 }).run();
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.timeline, c.timeline);
});

test('a site elects one leader on cold start and replaces it after power loss', () => {
  const r = new Simulator(fleet({ seed: 3, durationMs: 30_000, faults: faults('kill-leader@10s') })).run();
  assert.deepEqual(r.violations, []);
  assert.ok(
    r.firstLeaderMs !== null && r.firstLeaderMs < fleetTiming.electionTimeoutMinMs,
    `first leader at ${r.firstLeaderMs}`,
  );
  assert.equal(r.failovers.length, 1);
  const f = r.failovers[0]!;
  assert.notEqual(f.newLeader, f.oldLeader);
  // A survivor cannot campaign before the stickiness window has passed, nor take much longer on a clean network.
  assert.ok(
    f.latencyMs >= fleetTiming.electionTimeoutMinMs - fleetTiming.heartbeatMs,
    `failover ${f.latencyMs}`,
  );
  assert.ok(f.latencyMs < fleetTiming.electionTimeoutMaxMs + 500, `failover ${f.latencyMs}`);
  assert.equal(r.falseFailovers.length, 0);
});

test('a partition that leaves the leader in the majority changes nothing, before or after heal', () => {
  const sim = new Simulator(fleet({ seed: 5, durationMs: 40_000, faults: [] }));
  sim.run();
  const leader = sim.currentLeader()!;
  const others = sim.names.filter((n) => n !== leader);
  const minority = others.slice(0, 2);
  const majority = [leader, ...others.slice(2)];
  const r = new Simulator(
    fleet({
      seed: 5,
      durationMs: 40_000,
      faults: faults(`partition:${minority.join(',')}/${majority.join(',')}@10s`, 'heal@25s'),
    }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.timeline.length, 1, JSON.stringify(r.timeline));
  assert.equal(r.finalLeader, leader);
});

test('a leader that loses its Wi-Fi is replaced, and on return it follows without disruption', () => {
  const r = new Simulator(
    fleet({ seed: 11, durationMs: 40_000, faults: faults('isolate:leader@10s', 'heal@20s') }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.failovers.length, 1);
  assert.equal(r.falseFailovers.length, 0);
  assert.equal(r.timeline.length, 2);
});

test('a paused leader is replaced and, when it resumes, stops its server before anything else', () => {
  const r = new Simulator(
    fleet({ seed: 13, durationMs: 40_000, faults: faults('pause:leader@10s', 'resume:all@20s') }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.failovers.length, 1);
});

test('a 1.5 s loss burst on every link does not change the leader', () => {
  const r = new Simulator(
    fleet({
      seed: 17,
      durationMs: 120_000,
      lossRate: 0.1,
      bursts: [{ startMs: 10_000, durationMs: 1500, everyMs: 10_000 }],
    }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.timeline.length, 1, JSON.stringify(r.falseFailovers));
});

test('a planned transfer hands over within a few round trips', () => {
  const r = new Simulator(fleet({ seed: 19, durationMs: 20_000, faults: faults('transfer@10s') })).run();
  assert.equal(r.transfers.length, 1);
  assert.ok(r.transfers[0]!.latencyMs < 300, `transfer took ${r.transfers[0]!.latencyMs} ms`);
  assert.deepEqual(r.violations, []);
});

test('learners follow and never lead; entries commit across 200 members', () => {
  const r = new Simulator({
    ...defaultSimOptions(testTiming),
    nodes: 200,
    voters: 5,
    seed: 21,
    durationMs: 3_000,
    proposeEveryMs: 200,
  }).run();
  assert.deepEqual(r.violations, []);
  assert.ok(r.timeline.every((c) => ['r1', 'r2', 'r3', 'r4', 'r5'].includes(c.leader)));
  assert.ok(r.committedEntries > 5);
});

test('every committed entry survives the leader losing power, repeatedly', () => {
  const specs: string[] = [];
  for (let t = 5; t < 60; t += 10) specs.push(`kill-leader@${t}s`, `restart:all@${t + 4}s`);
  const r = new Simulator(
    fleet({ seed: 23, durationMs: 70_000, lossRate: 0.05, proposeEveryMs: 700, faults: faults(...specs) }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.ok(r.failovers.length >= 5, `${r.failovers.length} failovers`);
  assert.ok(r.committedEntries > 50);
});
