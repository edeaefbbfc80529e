import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startHeapTrim } from './heap-trim.ts';

test('startHeapTrim asks for a memory-reducing full collection on its schedule, and stops', async () => {
  const calls: unknown[] = [];
  const trim = startHeapTrim({ everyMs: 20, gc: (o: unknown) => calls.push(o) })!;
  while (calls.length < 2) await new Promise((r) => setTimeout(r, 10));
  trim.stop();
  const runs = calls.length;
  assert.deepEqual(calls[0], { type: 'major', execution: 'sync', flavor: 'last-resort' });
  assert.equal(trim.stats().runs, runs);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(calls.length, runs, 'no collection after stop');
});

test('without --expose-gc there is no gc, and startHeapTrim does nothing', () => {
  assert.equal(startHeapTrim({ gc: undefined }), null);
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this test runs without --expose-gc');
  assert.equal(startHeapTrim(), null);
});

test("V8's gc under --expose-gc takes the options startHeapTrim passes, and the timer keeps no process alive", () => {
  // A process that starts the trim and has nothing else to do exits at once, having run one
  // collection through the real gc when asked to.
  const heapTrim = fileURLToPath(new URL('./heap-trim.ts', import.meta.url));
  const script = `
    const { startHeapTrim } = await import(${JSON.stringify(heapTrim)});
    const trim = startHeapTrim({ everyMs: 1 });
    if (!trim) throw new Error('no gc');
    while (trim.stats().runs < 1) await new Promise((r) => setTimeout(r, 5));
    console.log('ran', trim.stats().runs);
  `;
  const run = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^ran \d+/);
});
