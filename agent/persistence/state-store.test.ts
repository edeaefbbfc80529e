import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HARD_STATE_FILE, LOG_FILE, StateCorruptError, StateStore } from './state-store.ts';

const tempDir = () => mkdtempSync(join(tmpdir(), 'edgectl-state-'));

test('a first boot starts empty; what is saved is what loads', () => {
  const dir = tempDir();
  try {
    const s = new StateStore(dir);
    assert.deepEqual(s.load(), { term: 0, votedFor: null, log: [] });
    s.saveLog([
      { term: 1, kind: 'noop', data: '' },
      { term: 2, kind: 'site', data: 'ünïcode' },
    ]);
    s.saveHardState(2, 'r3');
    assert.deepEqual(new StateStore(dir).load(), {
      term: 2,
      votedFor: 'r3',
      log: [
        { term: 1, kind: 'noop', data: '' },
        { term: 2, kind: 'site', data: 'ünïcode' },
      ],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged file is refused, naming the file; never a silent reset', () => {
  const dir = tempDir();
  try {
    const s = new StateStore(dir);
    s.saveHardState(5, 'r1');
    const f = join(dir, HARD_STATE_FILE);
    writeFileSync(f, readFileSync(f, 'utf8').replace('"term":5', '"term":6'));
    assert.throws(
      () => s.load(),
      (e: unknown) =>
        e instanceof StateCorruptError &&
        e.file === f &&
        /checksum/.test(e.message) &&
        /move the state directory aside/.test(e.hint ?? ''),
    );
    writeFileSync(f, '{"trunc');
    assert.throws(() => s.load(), /not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a log without its hard state, or ahead of it, is refused', () => {
  const dir = tempDir();
  try {
    const s = new StateStore(dir);
    s.saveLog([{ term: 3, kind: 'noop', data: '' }]);
    assert.throws(
      () => s.load(),
      (e: unknown) => e instanceof StateCorruptError && e.file.endsWith(HARD_STATE_FILE),
    );
    s.saveHardState(2, null);
    assert.throws(
      () => s.load(),
      (e: unknown) => e instanceof StateCorruptError && e.file.endsWith(LOG_FILE),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('killed mid-write 20 times, the state always loads consistent and never goes back', async () => {
  const dir = tempDir();
  const writer = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));
  try {
    let lastAcked = 0;
    for (let round = 0; round < 20; round++) {
      const child = spawn(process.execPath, [writer, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      await new Promise<void>((resolve) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          // Kill at a varying point: after 1..60 completed writes, in the middle of the next.
          const done = out.split('\n').filter((l) => /^\d+$/.test(l)).length;
          if (done >= 1 + ((round * 7) % 25)) child.kill('SIGKILL');
        });
        child.on('exit', () => resolve());
      });
      const acked = out
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .map(Number);
      if (acked.length) lastAcked = Math.max(lastAcked, acked[acked.length - 1]!);
      const st = new StateStore(dir).load();
      // Everything acknowledged before the kill is on disk; at most the write in flight is ahead.
      assert.ok(
        st.term >= lastAcked && st.term <= lastAcked + 1,
        `round ${round}: term ${st.term}, acked ${lastAcked}`,
      );
      const last = st.log[st.log.length - 1]!;
      // The log is at most one write behind the term, never ahead of it.
      assert.ok(
        last.term === st.term || last.term === st.term - 1,
        `round ${round}: log ${last.term} vs term ${st.term}`,
      );
      lastAcked = st.term;
    }
    assert.ok(lastAcked > 20);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
