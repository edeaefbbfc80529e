/** Golden files for the lab's pure renderers: UPDATE_GOLDEN=1 rewrites them, otherwise they must match. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIR = fileURLToPath(new URL('./testdata/', import.meta.url));

export function golden(name: string, actual: string): void {
  const file = join(DIR, name);
  if (process.env['UPDATE_GOLDEN'] === '1') {
    writeFileSync(file, actual);
    return;
  }
  let want: string;
  try {
    want = readFileSync(file, 'utf8');
  } catch {
    assert.fail(`golden file ${file} is missing: run with UPDATE_GOLDEN=1 to create it`);
  }
  assert.equal(
    actual,
    want,
    `${name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it after review)`,
  );
}
