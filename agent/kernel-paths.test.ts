import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateAgentConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { kernelFsProblem, stateDirProblem } from './kernel-paths.ts';

const config = (stateDir: string) => ({
  site: { id: 'lab' },
  node: { id: 'r1', serverCapable: true },
  voters: ['r1'],
  stateDir,
  controlPlane: { runtime: 'memory' },
});

test('a relative state directory, or one under /proc or /sys, is refused', () => {
  assert.equal(stateDirProblem('/var/lib/edgectl'), null);
  assert.match(stateDirProblem('state')!, /is relative/);
  assert.match(stateDirProblem('/proc/self/x')!, /under \/proc/);
  assert.match(kernelFsProblem('/sys/kernel')!, /under \/sys/);
  assert.equal(kernelFsProblem('/procfoo/x'), null);
  for (const dir of ['state', '/proc/edgectl'])
    assert.throws(
      () => validateAgentConfig(config(dir)),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => p.startsWith('stateDir: ')),
    );
});
