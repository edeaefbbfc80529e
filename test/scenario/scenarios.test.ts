/**
 * Runs every test/scenario/testdata/*.txt through the scenario harness, one subtest per file.
 *
 *   node --test test/scenario/                               check the goldens
 *   UPDATE_GOLDEN=1 node --test test/scenario/               rewrite them (then review the diff)
 *   node test/scenario/scenarios.test.ts --rewrite           the same, running this file directly
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runDataDriven, rewriteRequested } from './datadriven.ts';
import { ScenarioHarness } from './harness.ts';

const dir = fileURLToPath(new URL('./testdata/', import.meta.url));
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.txt'))
  .sort();

test('scenario goldens', async (t) => {
  if (files.length === 0) throw new Error(`no scenario files in ${dir}`);
  const rewrite = rewriteRequested();
  for (const f of files) {
    await t.test(f.replace(/\.txt$/, ''), () => {
      // A fresh environment per file: the commands of one file build on each other.
      const h = new ScenarioHarness();
      const r = runDataDriven(join(dir, f), (tc) => h.handle(tc), { rewrite });
      if (r.rewritten) t.diagnostic(`rewrote ${f}`);
    });
  }
});
