/**
 * Golden files for the site renderers: compare, or rewrite with UPDATE_GOLDEN=1 (then review the
 * diff), like the scenario tests (test/scenario/).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';

export function assertGolden(path: string, actual: string): void {
  if (process.env.UPDATE_GOLDEN === '1') {
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    assert.fail(`golden file ${path} is missing: run UPDATE_GOLDEN=1 node --test <this test> and review it`);
  }
  assert.equal(
    actual,
    expected,
    `${path} differs: if the change is intended, run with UPDATE_GOLDEN=1 and review the diff`,
  );
}
