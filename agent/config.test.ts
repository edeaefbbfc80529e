import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAgentConfig, validateAgentConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { fleetTiming } from '../statecharts/timing.ts';

const template = fileURLToPath(new URL('../templates/agent.yaml', import.meta.url));
const minimal = {
  site: { id: 'lab' },
  node: { id: 'r1', serverCapable: true },
  voters: ['r1', 'r2', 'r3'],
  controlPlane: { runtime: 'memory' },
};

function problemsOf(raw: unknown): string[] {
  try {
    validateAgentConfig(raw, 'agent.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

test('the shipped template is valid', () => {
  const c = loadAgentConfig(template);
  assert.equal(c.node.id, 'spot-1');
  assert.equal(c.controlPlane.runtime, 'k3s');
  assert.deepEqual(c.effectiveTiming, fleetTiming);
});

test('defaults fill everything a minimal config leaves out', () => {
  const c = validateAgentConfig(minimal);
  assert.equal(c.profile, 'fleet');
  assert.equal(c.network.port, 7946);
  assert.equal(c.status.listen, '127.0.0.1:7947');
  assert.equal(c.stateDir, '/var/lib/edgectl');
});

test('controlPlane.runtime is required: no runtime is a default, so a robot never runs a test twin by omission', () => {
  const { controlPlane: _, ...without } = minimal;
  assert.ok(problemsOf(without).some((p) => p.startsWith('controlPlane')));
  assert.ok(problemsOf({ ...without, controlPlane: {} }).some((p) => p.startsWith('controlPlane.runtime')));
});

test('timing overrides apply on top of the profile and are checked together', () => {
  const c = validateAgentConfig({ ...minimal, profile: 'lab', timing: { electionTimeoutMaxMs: 1300 } });
  assert.equal(c.effectiveTiming.electionTimeoutMaxMs, 1300);
  const p = problemsOf({ ...minimal, timing: { heartbeatMs: 1000 } });
  assert.ok(
    p.some((x) => x.includes('electionTimeoutMinMs') && x.includes('heartbeatMs')),
    p.join('\n'),
  );
});

test('every problem is reported at once, each naming its field', () => {
  const p = problemsOf({ site: { id: 'Bad Site' }, node: { id: 'r1' }, voters: [], nework: {} });
  assert.ok(
    p.some((x) => x.startsWith('site.id:')),
    p.join('\n'),
  );
  assert.ok(
    p.some((x) => x.startsWith('voters:')),
    p.join('\n'),
  );
  assert.ok(
    p.some((x) => x.includes('nework') && x.includes('unknown field')),
    p.join('\n'),
  );
});

test('cross-field invariants: a voter must be server-capable; dead after suspect; seeds without self', () => {
  const p = problemsOf({
    ...minimal,
    node: { id: 'r1', serverCapable: false },
    membership: { suspectAfterMs: 5000, deadAfterMs: 4000 },
    network: { seeds: [{ node: 'r1', host: '10.0.0.1' }] },
  });
  assert.ok(
    p.some((x) => x.startsWith('node.serverCapable')),
    p.join('\n'),
  );
  assert.ok(
    p.some((x) => x.startsWith('membership.deadAfterMs')),
    p.join('\n'),
  );
  assert.ok(
    p.some((x) => x.includes('is this robot')),
    p.join('\n'),
  );
});

test('a template config round-trips through YAML with a readable error for a typo', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-cfg-'));
  try {
    const f = join(dir, 'agent.yaml');
    writeFileSync(f, 'site: {id: lab}\nnode: {id: r1, serverCapable: true}\nvoters: [r1]\nprofle: lab\n');
    assert.throws(
      () => loadAgentConfig(f),
      (e: unknown) => e instanceof ConfigError && e.message.includes(f) && e.message.includes('profle'),
    );
    assert.throws(() => loadAgentConfig(join(dir, 'missing.yaml')), /cannot read the file/);
    writeFileSync(f, ': : :\n- [');
    assert.throws(() => loadAgentConfig(f), /not valid YAML/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('witnesses: never also voters, run no control plane, and count toward the 7-vote limit', () => {
  const base = {
    site: { id: 's' },
    voters: ['r1', 'r2'],
    witnesses: ['w1'],
    profile: 'test',
    controlPlane: { runtime: 'k3s' },
  };
  const witness = validateAgentConfig({
    ...base,
    node: { id: 'w1' },
    controlPlane: { runtime: 'none' },
  });
  assert.deepEqual(witness.witnesses, ['w1']);
  const problems = (raw: unknown) => {
    try {
      validateAgentConfig(raw);
      return [];
    } catch (e) {
      return (e as ConfigError).problems;
    }
  };
  assert.match(
    problems({ ...base, node: { id: 'w1' }, controlPlane: { runtime: 'k3s' } }).join('\n'),
    /w1 is a witness, which runs no control plane: set controlPlane.runtime: none/,
  );
  assert.match(
    problems({ ...base, node: { id: 'r1', serverCapable: true }, controlPlane: { runtime: 'none' } }).join(
      '\n',
    ),
    /none is for witnesses only/,
  );
  assert.match(
    problems({ ...base, witnesses: ['r2'], node: { id: 'r1', serverCapable: true } }).join('\n'),
    /r2 is also in voters/,
  );
  assert.match(
    problems({
      ...base,
      voters: ['r1', 'r2', 'r3', 'r4', 'r5'],
      witnesses: ['w1', 'w2', 'w3'],
      node: { id: 'r1', serverCapable: true },
    }).join('\n'),
    /voters \+ witnesses: 8 is more than 7/,
  );
});
