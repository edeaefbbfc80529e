/**
 * `inventory validate` finds every problem in one run: a schema error does not hide the
 * cross-field, CIDR, key-file or duplicate-name errors of the same file, and it refuses what a
 * later command (bootstrap, the API server, kubelet) would refuse.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError } from '../../agent/errors.ts';
import { loadInventory } from './inventory-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-validate-all-'));
after(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), 'not really node\n');
writeFileSync(join(dir, 'id'), 'not really a key\n', { mode: 0o600 });

function problemsOf(doc: unknown): string[] {
  const path = join(dir, `inv-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, stringify(doc));
  try {
    loadInventory(path, { HOME: dir });
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return [...e.problems];
  }
  assert.fail('expected a ConfigError');
}

const robot = (name: string, address: string, extra: Record<string, unknown> = {}) => ({
  name,
  address,
  ssh: { user: 'edgectl', keyFile: 'id' },
  ...extra,
});

test('one inventory with one error of each layer reports all of them in one run', () => {
  const problems = problemsOf({
    // schema: an unknown top-level field, and an unknown field on a robot
    colour: 'blue',
    site: {
      id: 'lab',
      // site schema: an unknown field; site cross-field: a CIDR with host bits set
      flavour: 'x',
      networks: [{ name: 'dds', range: '192.168.50.7/24' }],
    },
    robots: [
      robot('r1', '10.0.0.1', { serverCapable: true, colour: 'red' }),
      // duplicate name (the robot before it has an unknown field)
      robot('r1', '10.0.0.2', { serverCapable: true }),
      // key file: missing
      robot('r3', '10.0.0.3', { ssh: { user: 'edgectl', keyFile: 'missing-key' } }),
      // schema: no name at all (the robots after it keep their indexes)
      { address: '10.0.0.4', ssh: { user: 'edgectl', keyFile: 'id' } },
      // cross-field: sudo none for a user that is not root
      robot('r5', '10.0.0.5', { sudo: 'none' }),
    ],
    bundle: { agent: 'agent.mjs', node: 'node' },
    // cross-field: a voter that is not server-capable
    voters: ['r1', 'r3'],
  }).join('\n');
  for (const want of [
    /\(top level\): unknown field\(s\) colour/,
    /robots\[0\]: unknown field\(s\) colour/,
    /robots\[3\]\.name: missing/,
    /site: unknown field\(s\) flavour/,
    /site\.networks\[0\]\.range: "192\.168\.50\.7\/24" has host bits set/,
    /robots\[1\]\.name: r1 is also robots\[0\]\.name/,
    /robots\[4\]\.sudo: edgectl is not root and sudo is none/,
    /voters\[1\]: r3 is not server-capable: set robots\[2\]\.serverCapable/,
    /robots\[2\]\.ssh\.keyFile: .*missing-key does not exist/,
  ])
    assert.match(problems, want);
});

test('a site network that fails its schema still gets its CIDR checks, at its own index', () => {
  const problems = problemsOf({
    site: {
      id: 'lab',
      networks: [
        { range: '192.168.60.0/24' }, // no name: unrecoverable
        { name: 'b', range: '10.42.1.0/24', colour: 'red' }, // unknown field + inside k3s's pods
      ],
    },
    robots: [robot('r1', '10.0.0.1', { serverCapable: true })],
    bundle: { agent: 'agent.mjs', node: 'node' },
  }).join('\n');
  assert.match(problems, /site\.networks\[0\]\.name/);
  assert.match(problems, /site\.networks\[1\]: unknown field\(s\) colour/);
  assert.match(problems, /site\.networks\[1\]\.range: 10\.42\.1\.0\/24 overlaps 10\.42\.0\.0\/16/);
});
