import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const WRAPPER = fileURLToPath(new URL('./edgectl.js', import.meta.url));
// The re-exec path only runs under a Node older than 24; this machine's system node is one.
const OLD_NODE = process.env.EDGECTL_OLD_NODE ?? '/usr/bin/node';

function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text ? text.split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function assertOldNode(): void {
  const version = execFileSync(OLD_NODE, ['--version'], { encoding: 'utf8' }).trim();
  assert.ok(
    Number(version.slice(1).split('.')[0]) < 24,
    `${OLD_NODE} is ${version}: set EDGECTL_OLD_NODE to a Node older than 24 so the wrapper re-execs`,
  );
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(
    `the re-exec wrapper hands ${signal} to its Node 24 child and ends as the child ended`,
    { timeout: 60_000 },
    async () => {
      assertOldNode();
      // A simulated day keeps the child busy until the signal ends it (no handler: the default action).
      const wrapper = spawn(OLD_NODE, [WRAPPER, 'sim', '--nodes', '1', '--duration', '24h'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      wrapper.stderr.on('data', (d: Buffer) => (stderr += String(d)));
      const exited = once(wrapper, 'exit');
      let child: number | undefined;
      for (let i = 0; i < 400 && child === undefined && wrapper.exitCode === null; i++) {
        child = childrenOf(wrapper.pid!)[0];
        if (child === undefined) await sleep(50);
      }
      assert.ok(child !== undefined && alive(child), `the wrapper runs its work in a child: ${stderr}`);
      wrapper.kill(signal);
      const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
      assert.equal(sig, signal, `the wrapper ends of the child's signal (exit code ${code}): ${stderr}`);
      for (let i = 0; i < 100 && alive(child); i++) await sleep(50);
      assert.equal(alive(child), false, 'no orphaned child');
    },
  );
}

test('the re-exec wrapper exits with its child’s exit code', { timeout: 60_000 }, async () => {
  assertOldNode();
  const wrapper = spawn(OLD_NODE, [WRAPPER, 'sim', '--bogus'], { stdio: 'ignore' });
  const [code] = (await once(wrapper, 'exit')) as [number | null];
  assert.equal(code, 2);
});
