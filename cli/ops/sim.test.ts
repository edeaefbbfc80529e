import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Simulator } from '../../lab/sim/simulator.ts';
import { main } from '../main.ts';
import { runSim, type SimCommandOptions } from './sim.ts';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

async function refused(args: string[], flag: string, pattern: RegExp) {
  const c = io();
  assert.equal(await main(['sim', ...args, '-ojson'], c.io), 2, `sim ${args.join(' ')} is refused`);
  const e = JSON.parse(c.err.join('')).error;
  assert.match(e.message, pattern, `sim ${args.join(' ')}`);
  assert.equal(e.errors[0].path, flag, `sim ${args.join(' ')} names ${flag}`);
  assert.ok(e.hint, 'with a fix');
}

test('a duration needs its unit and has bounds', async () => {
  await refused(['--duration', '120'], '--duration', /has no unit/);
  await refused(['--duration', '1e309s'], '--duration', /too long/);
  await refused(['--duration', '25h'], '--duration', /out of range/);
  await refused(['--duration', '0'], '--duration', /out of range/);
  await refused(['--delay', '2-10ms'], '--delay', /no unit/);
  await refused(['--burst', '1.5@2s'], '--burst', /no unit/);
  await refused(['--fault', 'kill-leader@20'], '--fault', /no unit/);
});

test('a seed is a whole number that fits 32 bits, never aliased, never null', async () => {
  for (const seed of ['1.5', 'abc', '1e309', '4294967297', '-1'])
    await refused(['--seed', seed], '--seed', /not a 32-bit seed/);
  const c = io();
  assert.equal(await main(['sim', '--seed', '4294967295', '--duration', '2s', '-ojson'], c.io), 0);
  assert.equal(JSON.parse(c.out.join('')).seed, 4294967295);
});

test('--nodes abc says what was typed, not NaN', async () => {
  await refused(['--nodes', 'abc'], '--nodes', /--nodes abc is not a number of robots/);
});

test('a fault or burst after the run ends is refused, so is a transfer to a learner', async () => {
  await refused(['--duration', '30s', '--fault', 'kill-leader@40s'], '--fault', /after the run ends/);
  await refused(['--duration', '30s', '--burst', '1s@30s'], '--burst', /after the run ends/);
  await refused(['--nodes', '5', '--voters', '3', '--fault', 'transfer:r4@10s'], '--fault', /learner/);
  const c = io();
  assert.equal(
    await main(
      ['sim', '--nodes', '5', '--voters', '3', '--fault', 'transfer:r2@10s', '--duration', '20s'],
      c.io,
    ),
    0,
  );
});

test('bursts are listed in the faults table, in time order with the faults', async () => {
  const c = io();
  const args = ['sim', '--duration', '30s', '--burst', '1.5s@12s/10s', '--fault', 'kill-leader@5s'];
  assert.equal(await main(args, c.io), 0, c.err.join('\n'));
  const text = c.out.join('\n');
  const faults = text.slice(text.indexOf('faults:'));
  assert.match(faults, /5\.000s\s+kill:leader/);
  assert.match(faults, /12\.000s\s+burst 1\.500s on every link, every 10\.000s\s+-/);
  assert.ok(faults.indexOf('kill:leader') < faults.indexOf('burst'));
  const j = io();
  assert.equal(await main([...args, '-ojson'], j.io), 0);
  assert.deepEqual(JSON.parse(j.out.join('')).bursts, [
    { durationMs: 1500, startMs: 12_000, everyMs: 10_000 },
  ]);
});

test('a long run shows its progress on stderr', () => {
  const c = io();
  const o: SimCommandOptions = {
    nodes: 3,
    seed: 1,
    duration: '60s',
    loss: 0,
    delay: '2ms-10ms',
    dup: 0,
    burst: [],
    fault: [],
    profile: 'fleet',
    proposeEvery: '5s',
    trace: false,
    output: 'json',
  };
  // A clock that moves 3 s of wall time per progress call: the run "takes" long.
  let wall = 0;
  runSim(
    o,
    c.io,
    (opts, progress) => new Simulator(opts).run(progress),
    () => (wall += 3000),
  );
  assert.ok(c.err.length >= 2, c.err.join('\n'));
  assert.match(c.err[0]!, /^sim: \d+\.\d{3}s of 60\.000s simulated \(\d+%\), about \d+s left$/);
  const quick = io();
  runSim(
    o,
    quick.io,
    (opts, progress) => new Simulator(opts).run(progress),
    () => 0,
  );
  assert.deepEqual(quick.err, [], 'a quick run prints no progress');
});
test('a flag error names the flag as its path', async () => {
  const c = io();
  assert.equal(await main(['sim', '--duration', '120', '-ojson'], c.io), 2);
  const e = JSON.parse(c.err.join('')).error;
  assert.equal(e.errors[0].path, '--duration');
});

test('--loss and --dup echo what was typed; a flag without its value is a usage error', async () => {
  await refused(['--loss', 'abc'], '--loss', /--loss abc is not a fraction/);
  await refused(['--dup', '2'], '--dup', /--dup 2 is not a fraction/);
  const c = io();
  assert.equal(await main(['sim', '--duration'], c.io), 2);
  assert.match(c.err.join('\n'), /Not enough arguments following: duration/);
  assert.doesNotMatch(c.err.join('\n'), /bug in edgectl/);
});
