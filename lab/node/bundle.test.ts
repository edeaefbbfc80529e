import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { EdgeError } from '../../agent/errors.ts';
import { realNodeBundle } from './real-node.ts';

const has = (bin: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

test('without the built node bundle, lab up fails naming the build, and builds nothing', () => {
  const cache = mkdtempSync(join(tmpdir(), 'edgectl-empty-cache-'));
  const saved = process.env['EDGECTL_CACHE'];
  process.env['EDGECTL_CACHE'] = cache;
  try {
    assert.throws(
      () => realNodeBundle({ build: false }),
      (e: unknown) => {
        assert.ok(e instanceof EdgeError);
        if (['containerd', 'runc', 'ctr'].every(has)) {
          assert.equal(e.code, 'EDGE_NODE_BUNDLE_MISSING');
          assert.match(e.hint ?? '', /sudo bash lab\/node\/build\.sh/);
          assert.match(e.hint ?? '', /--node lite/);
        } else assert.equal(e.code, 'EDGE_NODE_DEPS_MISSING');
        return true;
      },
    );
    assert.deepEqual(
      execFileSync('find', [cache, '-mindepth', '1'], { encoding: 'utf8' }),
      '',
      'nothing built',
    );
  } finally {
    if (saved === undefined) delete process.env['EDGECTL_CACHE'];
    else process.env['EDGECTL_CACHE'] = saved;
    rmSync(cache, { recursive: true, force: true });
  }
});
