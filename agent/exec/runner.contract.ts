/**
 * The one contract every CommandRunner passes: the in-memory twin (in-memory.test.ts), this
 * machine (local.test.ts) and a real OpenSSH sshd in a network namespace, as a non-root user with
 * sudo (test/integration/ssh-runner.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { CommandRunner } from './runner.ts';

export interface RunnerFixture {
  readonly runner: CommandRunner;
  /** An existing directory on the target, only root may write to. */
  readonly scratch: string;
}

/** Arguments a careless runner would split, expand or execute. */
export const NASTY_ARGS = [
  'two words',
  "it's",
  '"double"',
  '$HOME',
  '$(id -u)',
  '`id`',
  'a;b',
  'x && y',
  '*',
  '~',
  'back\\slash',
  'tab\there',
  '',
  '-n',
  'ünïcødé',
];

export function describeRunnerContract(name: string, make: () => Promise<RunnerFixture>): void {
  describe(`CommandRunner contract: ${name}`, () => {
    let fx: RunnerFixture;
    const local = mkdtempSync(join(tmpdir(), 'edgectl-runner-contract-'));
    const get = async () => (fx ??= await make());
    after(async () => {
      rmSync(local, { recursive: true, force: true });
      await fx?.runner.close();
    });

    test('argv reaches the command unchanged: no splitting, expansion or injection', async () => {
      const { runner } = await get();
      const r = await runner.run(['printf', '%s\\n', ...NASTY_ARGS]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.split('\n').slice(0, -1), NASTY_ARGS);
    });

    test('a non-zero exit is a result with its stderr, not a rejection', async () => {
      const { runner } = await get();
      const r = await runner.run(['cat', '/nonexistent-edgectl/file']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /No such file or directory/);
    });

    test('a command that does not exist exits 127', async () => {
      const { runner } = await get();
      const r = await runner.run(['edgectl-no-such-command']);
      assert.equal(r.code, 127);
    });

    test('stdin reaches the command', async () => {
      const { runner } = await get();
      const r = await runner.run(['cat'], { stdin: 'line 1\nline 2\n' });
      assert.equal(r.stdout, 'line 1\nline 2\n');
    });

    test('sudo runs the command as root, with its stdin', async () => {
      const { runner } = await get();
      assert.equal((await runner.run(['id', '-u'], { sudo: true })).stdout.trim(), '0');
      assert.equal((await runner.run(['cat'], { sudo: true, stdin: 'only this' })).stdout, 'only this');
    });

    test('cwd sets the working directory', async () => {
      const { runner, scratch } = await get();
      assert.equal((await runner.run(['pwd'], { cwd: scratch })).stdout.trim(), scratch);
    });

    test('output lines are streamed to onLine as they come, stdout and stderr apart', async () => {
      const { runner } = await get();
      const lines: string[] = [];
      const r = await runner.run(['printf', '%s\\n', 'one', 'two', 'three'], {
        onLine: (s, l) => lines.push(`${s}:${l}`),
      });
      assert.equal(r.code, 0);
      assert.deepEqual(lines, ['stdout:one', 'stdout:two', 'stdout:three']);
    });

    test('a command over its timeout is killed and rejects with EDGE_COMMAND_TIMEOUT', async () => {
      const { runner } = await get();
      await assert.rejects(runner.run(['sleep', '30'], { timeoutMs: 300 }), { code: 'EDGE_COMMAND_TIMEOUT' });
      // The runner still works afterwards.
      assert.equal((await runner.run(['true'])).code, 0);
    });

    test('writeFile: a 0600 root secret is 0600 root:root, reads back, and leaves no temp file', async () => {
      const { runner, scratch } = await get();
      const dir = `${scratch}/secret`;
      assert.equal((await runner.run(['mkdir', '-p', '-m', '0700', dir], { sudo: true })).code, 0);
      const path = `${dir}/site.key`;
      await runner.writeFile(path, 'k'.repeat(64), { mode: 0o600, owner: 'root:root', sudo: true });
      const st = await runner.run(['stat', '-c', '%a %U:%G', path], { sudo: true });
      assert.equal(st.stdout.trim(), '600 root:root');
      assert.equal((await runner.readFile(path, { sudo: true }))?.toString(), 'k'.repeat(64));
      assert.deepEqual(
        (await runner.run(['ls', '-A', dir], { sudo: true })).stdout.split('\n').filter(Boolean),
        ['site.key'],
      );
    });

    test('writeFile over an existing file replaces content and mode', async () => {
      const { runner, scratch } = await get();
      const path = `${scratch}/replace.yaml`;
      await runner.writeFile(path, 'old\n', { mode: 0o644, owner: 'root:root', sudo: true });
      await runner.writeFile(path, 'new\n', { mode: 0o600, owner: 'root:root', sudo: true });
      assert.equal((await runner.readFile(path, { sudo: true }))?.toString(), 'new\n');
      assert.equal((await runner.run(['stat', '-c', '%a', path], { sudo: true })).stdout.trim(), '600');
    });

    test('writeFile keeps binary content byte for byte', async () => {
      const { runner, scratch } = await get();
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      await runner.writeFile(`${scratch}/bytes`, bytes, { mode: 0o644, sudo: true });
      assert.deepEqual(await runner.readFile(`${scratch}/bytes`, { sudo: true }), bytes);
    });

    test('writeFile into a missing directory rejects and creates nothing', async () => {
      const { runner, scratch } = await get();
      await assert.rejects(runner.writeFile(`${scratch}/missing/file`, 'x', { mode: 0o644, sudo: true }), {
        code: 'EDGE_WRITE_FAILED',
      });
      assert.equal((await runner.run(['test', '-e', `${scratch}/missing`], { sudo: true })).code, 1);
    });

    test('readFile of a missing file resolves null', async () => {
      const { runner, scratch } = await get();
      assert.equal(await runner.readFile(`${scratch}/nope`, { sudo: true }), null);
    });

    test('upload streams a local file; its sha256 matches on the target', async () => {
      const { runner, scratch } = await get();
      const src = join(local, 'bundle.bin');
      const data = Buffer.alloc(300_000, 7);
      writeFileSync(src, data);
      await runner.upload(src, `${scratch}/bundle.bin`, { mode: 0o755, owner: 'root:root', sudo: true });
      const sum = await runner.run(['sha256sum', `${scratch}/bundle.bin`], { sudo: true });
      assert.equal(sum.stdout.split(' ')[0], createHash('sha256').update(data).digest('hex'));
      assert.equal(
        (await runner.run(['stat', '-c', '%a', `${scratch}/bundle.bin`], { sudo: true })).stdout.trim(),
        '755',
      );
    });

    test('rm -rf removes a tree, and is a no-op when it is gone', async () => {
      const { runner, scratch } = await get();
      await runner.run(['mkdir', '-p', `${scratch}/tree/sub`], { sudo: true });
      await runner.writeFile(`${scratch}/tree/sub/f`, 'x', { mode: 0o644, sudo: true });
      assert.equal((await runner.run(['rm', '-rf', '--', `${scratch}/tree`], { sudo: true })).code, 0);
      assert.equal((await runner.run(['test', '-e', `${scratch}/tree`], { sudo: true })).code, 1);
      assert.equal((await runner.run(['rm', '-rf', '--', `${scratch}/tree`], { sudo: true })).code, 0);
    });
  });
}
