import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startHeapTrim } from './heap-trim.ts';

const tick = () => new Promise((r) => setTimeout(r, 5));

test('startHeapTrim collects at its first check, then only once the memory has grown by the margin, and stops', async () => {
  const calls: unknown[] = [];
  let rss = 50;
  let checks = 0;
  const trim = startHeapTrim({
    checkEveryMs: 1,
    growthBytes: 10,
    gc: (o: unknown) => {
      calls.push(o);
      rss -= 5; // what the collection gives back
    },
    rss: () => {
      checks++;
      return rss;
    },
  })!;
  while (calls.length < 1) await tick();
  assert.deepEqual(calls[0], { type: 'major', execution: 'sync', flavor: 'last-resort' });
  // 45 after the collection: checks below 55 collect nothing.
  rss = 54;
  const before = checks;
  while (checks < before + 3) await tick();
  assert.equal(calls.length, 1, 'grown by less than the margin: no collection');
  rss = 56;
  while (calls.length < 2) await tick();
  assert.equal(trim.stats().runs, 2);
  trim.stop();
  rss = 1000;
  const stopped = checks;
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(checks, stopped, 'no check after stop');
  assert.equal(calls.length, 2);
});

test('without --expose-gc there is no gc, and startHeapTrim does nothing', () => {
  assert.equal(startHeapTrim({ gc: undefined }), null);
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined', 'this test runs without --expose-gc');
  assert.equal(startHeapTrim(), null);
});

test("V8's gc under --expose-gc takes the options startHeapTrim passes, and the timer keeps no process alive", () => {
  // A process that starts the trim and has nothing else to do exits once its first collection,
  // through the real gc, has run.
  const heapTrim = fileURLToPath(new URL('./heap-trim.ts', import.meta.url));
  const script = `
    const { startHeapTrim } = await import(${JSON.stringify(heapTrim)});
    const trim = startHeapTrim({ checkEveryMs: 1 });
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
