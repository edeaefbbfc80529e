import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const WRAPPER = fileURLToPath(new URL('./edgectl.js', import.meta.url));
// The re-exec path only runs under a Node older than 24; this machine's system node is one.
const OLD_NODE = process.env.EDGECTL_OLD_NODE ?? '/usr/bin/node';

function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text ? text.split(/\s+/).map(Number) : [];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  test(
    `the re-exec wrapper hands ${signal} to its Node 24 child and ends as the child ended`,
    { timeout: 20_000 },
    async () => {
      const version = execFileSync(OLD_NODE, ['--version'], { encoding: 'utf8' }).trim();
      assert.ok(
        Number(version.slice(1).split('.')[0]) < 24,
        `${OLD_NODE} is ${version}: set EDGECTL_OLD_NODE to a Node older than 24 so the wrapper re-execs`,
      );
      // A TCP server that accepts and never answers keeps `edgectl status` waiting in the child.
      const sockets: import('node:net').Socket[] = [];
      const closed: Promise<unknown>[] = [];
      const server = createServer((s) => {
        sockets.push(s);
        closed.push(once(s, 'close'));
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const port = (server.address() as { port: number }).port;
      try {
        const wrapper = spawn(OLD_NODE, [WRAPPER, 'status', '--addr', `127.0.0.1:${port}`], {
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        wrapper.stderr.on('data', (d: Buffer) => (stderr += String(d)));
        const exited = once(wrapper, 'exit');
        const first = await Promise.race([
          once(server, 'connection').then(() => 'connected'),
          exited.then(() => 'exited'),
        ]);
        assert.equal(first, 'connected', `edgectl ended before it connected: ${stderr}`);
        const [child] = childrenOf(wrapper.pid!);
        assert.ok(child !== undefined && alive(child), 'the wrapper runs its work in a child');
        wrapper.kill(signal);
        const [code, sig] = (await exited) as [number | null, NodeJS.Signals | null];
        assert.equal(sig, signal, `the wrapper ends of the child's signal (exit code ${code})`);
        await closed[0]; // the child's connection closed: it died, it was not orphaned
        assert.equal(alive(child!), false, 'no orphaned child');
      } finally {
        for (const s of sockets) s.destroy();
        server.close();
      }
    },
  );
}

test('the re-exec wrapper exits with its child’s exit code', async () => {
  const wrapper = spawn(OLD_NODE, [WRAPPER, 'sim', '--bogus'], { stdio: 'ignore' });
  const [code] = (await once(wrapper, 'exit')) as [number | null];
  assert.equal(code, 2);
});
