import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fleetTiming } from '../../statecharts/timing.ts';
import { parseTimedFault } from '../faults.ts';
import { Simulator, defaultSimOptions, type SimOptions } from './simulator.ts';

const twoAndWitness = (o: Partial<SimOptions>) => ({
  ...defaultSimOptions(fleetTiming),
  nodes: 2,
  voters: 2,
  witnesses: 1,
  ...o,
});
const faults = (...specs: string[]) => specs.map(parseTimedFault);

test('two robots and a witness: the witness never leads, on many seeds with loss', () => {
  for (let seed = 1; seed <= 30; seed++) {
    const r = new Simulator(twoAndWitness({ seed, durationMs: 30_000, lossRate: 0.1 })).run();
    assert.deepEqual(r.violations, [], `seed ${seed}`);
    assert.ok(r.timeline.length > 0, `seed ${seed}: a leader was elected`);
    assert.ok(
      r.timeline.every((c) => c.leader !== 'w1'),
      `seed ${seed}: ${JSON.stringify(r.timeline)}`,
    );
  }
});

test('two robots and a witness: either robot losing power hands the site to the other', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const r = new Simulator(
      twoAndWitness({ seed, durationMs: 30_000, faults: faults('kill-leader@10s') }),
    ).run();
    assert.deepEqual(r.violations, []);
    assert.equal(r.failovers.length, 1, `seed ${seed}`);
    const f = r.failovers[0]!;
    assert.deepEqual([f.oldLeader, f.newLeader].sort(), ['r1', 'r2']);
    assert.ok(f.latencyMs < fleetTiming.electionTimeoutMaxMs + 1_000, `seed ${seed}: ${f.latencyMs} ms`);
    assert.equal(r.finalLeader, f.newLeader);
  }
});

test('two robots and a witness: the witness losing power changes no leader', () => {
  const r = new Simulator(
    twoAndWitness({ seed: 4, durationMs: 40_000, faults: faults('kill:w1@10s') }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.timeline.length, 1, JSON.stringify(r.timeline));
  assert.deepEqual(r.falseFailovers, []);
});

test('two robots and a witness: both robots off, one back, it leads once the witness votes for it', () => {
  const sim = new Simulator(
    twoAndWitness({
      seed: 8,
      durationMs: 40_000,
      faults: faults('kill:r1@10s', 'kill:r2@10s', 'restart:r2@15s'),
    }),
  );
  const r = sim.run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.finalLeader, 'r2');
  const last = r.timeline.at(-1)!;
  assert.ok(last.atMs > 15_000 && last.leader === 'r2', JSON.stringify(r.timeline));
});

test('two voters and no witness: the survivor of a leader loss never leads (why a witness is needed)', () => {
  const r = new Simulator(
    twoAndWitness({ seed: 2, witnesses: 0, durationMs: 30_000, faults: faults('kill-leader@10s') }),
  ).run();
  assert.deepEqual(r.violations, []);
  assert.equal(r.failovers.length, 0);
  assert.equal(r.finalLeader, null);
});
