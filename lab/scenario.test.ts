import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ConfigError, UsageError } from '../agent/errors.ts';
import { parseLabFault, parseScenario } from './scenario.ts';

const DIR = fileURLToPath(new URL('./scenarios/', import.meta.url));

test('every built-in scenario parses, and together they cover the issue list', () => {
  const names = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
  const parsed = names.map((f) => parseScenario(readFileSync(join(DIR, f), 'utf8'), f));
  assert.deepEqual(parsed.map((s) => s.name).sort(), [
    'cold-start',
    'leader-loss-no-lost-writes',
    'leader-pause',
    'leader-power-loss',
    'leader-wifi-loss',
    'loss-bursts',
    'partition',
    'partition-3',
    'rolling-power-cycle',
    'witness-both-robots-off',
    'witness-loss',
    'witness-robot-loss',
    'worker-power-loss',
    'workload-leader-loss',
    'workload-robot-loss',
  ]);
  for (const name of ['witness-both-robots-off', 'witness-loss', 'witness-robot-loss']) {
    const s = parsed.find((x) => x.name === name)!;
    assert.deepEqual([s.robots, s.voters, s.witnesses], [2, 2, 1], name);
  }
  const bursts = parsed.find((s) => s.name === 'loss-bursts')!;
  assert.equal(bursts.durationMs, 300_000);
  assert.equal(bursts.profile, 'fleet', 'robots ride out 1.5 s bursts with the fleet timing');
  // 10 s, 30 s, ... 290 s: one burst every 20 s, expanded with unique ids.
  const b = bursts.steps.filter((s) => s.text.startsWith('burst'));
  assert.equal(b.length, 15);
  assert.equal(new Set(b.map((s) => s.id)).size, 15);
});

test('operator faults become vocabulary faults', () => {
  assert.deepEqual(parseLabFault('power-off leader'), [
    { kind: 'fault', fault: { kind: 'kill', node: 'leader' } },
  ]);
  assert.deepEqual(parseLabFault('wifi-on r2'), [{ kind: 'wifi-on', node: 'r2' }]);
  assert.deepEqual(parseLabFault('loss r1 10'), [
    { kind: 'fault', fault: { kind: 'drop', from: 'r1', to: 'all', rate: 0.1 } },
    { kind: 'fault', fault: { kind: 'drop', from: 'all', to: 'r1', rate: 0.1 } },
  ]);
  assert.deepEqual(parseLabFault('partition r1,r2/r3'), [
    { kind: 'fault', fault: { kind: 'partition', groups: [['r1', 'r2'], ['r3']] } },
  ]);
  assert.deepEqual(parseLabFault('kill:r3'), [{ kind: 'fault', fault: { kind: 'kill', node: 'r3' } }]);
});

test('a malformed fault names the form to write', () => {
  assert.throws(
    () => parseLabFault('loss all lots'),
    (e: unknown) => e instanceof UsageError && /loss <robot\|all> <percent/.test(e.hint ?? ''),
  );
  assert.throws(
    () => parseLabFault('explode r1'),
    (e: unknown) => e instanceof UsageError && /power-off <robot>/.test(e.hint ?? ''),
  );
});

test('a bad scenario reports every problem at once, each with its field', () => {
  const text = [
    'name: bad',
    'robots: 3',
    'voters: 5',
    'duration: 10s',
    'faults:',
    '  - { id: a, at: 1s, fault: power-off r9 }',
    '  - { id: a, at: 2s, fault: meltdown }',
    'expect:',
    '  - { kind: new-leader, after: nope }',
  ].join('\n');
  try {
    parseScenario(text, 'bad.yaml');
    assert.fail('must throw');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const p = e.problems.join('\n');
    assert.match(p, /voters: 5 is more than robots/);
    assert.match(p, /faults\.0\.fault: "power-off r9" names a robot beyond r3/);
    assert.match(p, /faults\.1\.id: "a" is used twice/);
    assert.match(p, /faults\.1\.fault: unknown fault/);
    assert.match(p, /expect\.0\.after: no fault has id "nope"/);
    assert.match(p, /expect\.0\.within: new-leader needs a time limit/);
  }
});

test('unknown scenario fields are refused', () => {
  assert.throws(() => parseScenario('name: x\nrobots: 3\nduration: 1s\nrobtos: 3\n', 'x.yaml'), ConfigError);
});

test('a scenario is plain YAML like every input: tags and merge keys are refused', () => {
  assert.throws(
    () => parseScenario('name: x\nrobots: !!int 3\n', 'tagged.yaml'),
    /YAML tag .* is not supported/,
  );
  assert.throws(
    () => parseScenario('base: &b {robots: 3}\nscenario:\n  <<: *b\n', 'merged.yaml'),
    /merge key << .* is not supported/,
  );
});

test('a workload scenario runs on real nodes; workload expectations and the stateful target need a workload', () => {
  const ok = parseScenario(
    [
      'name: w',
      'robots: 3',
      'workload: { deployment: 2, statefulset: 1 }',
      'duration: 10s',
      'faults: [{ id: off, at: 1s, fault: power-off stateful }]',
      'expect:',
      '  - { kind: workload-ready, after: off, within: 40s }',
      '  - { kind: no-duplicate-ip, after: off }',
      '',
    ].join('\n'),
    'w.yaml',
  );
  assert.equal(ok.node, 'real', 'real nodes by default');
  assert.deepEqual(ok.workload, { deployment: 2, statefulset: 1, statefulsetOn: 'worker' });
  assert.throws(
    () =>
      parseScenario(
        [
          'name: w',
          'robots: 3',
          'node: lite',
          'duration: 10s',
          'faults: [{ id: off, at: 1s, fault: power-off stateful }]',
          'expect: [{ kind: workload-ready, after: off, within: 40s }]',
          '',
        ].join('\n'),
        'w.yaml',
      ),
    (e: Error) =>
      /workload-ready is judged on the workload/.test(e.message) &&
      /"stateful" names the robot/.test(e.message),
  );
});
