/**
 * `edgectl site ready` does what its options say: --dry-run touches no robot and writes nothing,
 * --parallel bounds how many robots it reaches at once, and an option it has no use for
 * (--recheck: site ready records no steps) is refused rather than silently ignored.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import type { CommandRunner } from '../../agent/exec/runner.ts';
import { main } from '../main.ts';
import { runSiteReady, type BootstrapDeps } from '../ops/bootstrap.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-site-ready-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const elf = Buffer.alloc(64);
elf.writeUInt32BE(0x7f454c46, 0);
elf[5] = 1;
elf.writeUInt16LE(0x3e, 18);
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), elf);
writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });
const inventory = join(dir, 'site.yaml');
writeFileSync(
  inventory,
  stringify({
    site: { id: 'ready' },
    robots: ['r1', 'r2', 'r3', 'r4'].map((name, i) => ({
      name,
      address: `10.77.50.${i + 1}`,
      ssh: { user: 'edgectl', keyFile: 'id' },
      sudo: name === 'r2' ? 'password' : 'nopasswd',
      serverCapable: i < 3,
    })),
    bundle: { agent: 'agent.mjs', node: 'node' },
  }),
);

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

const base = {
  file: inventory,
  siteDir: join(dir, 'site-dir'),
  acceptNewHostKeys: false,
  timeoutMs: 1000,
  mergeKubeconfig: true,
  output: 'json' as const,
};

test('site ready --dry-run connects to no robot, asks no password, writes nothing, and says what it would do', async () => {
  const c = io();
  const deps: BootstrapDeps = {
    connect: async () => assert.fail('a dry run connects to no robot'),
    readPassword: async () => assert.fail('a dry run asks for no password'),
    env: { ...process.env, HOME: join(dir, 'home') },
  };
  const plan = await runSiteReady({ ...base, dryRun: true, parallel: 2 }, c.io, deps);
  assert.ok(!existsSync(base.siteDir));
  assert.ok(!existsSync(join(dir, 'home')));
  const shown = JSON.parse(c.out.join(''));
  assert.equal(shown.type, 'site.ready.plan');
  assert.deepEqual(shown.robots, ['r1', 'r2', 'r3', 'r4']);
  assert.equal(shown.parallel, 2);
  assert.equal(shown.kubeconfig, join(base.siteDir, 'kubeconfig'));
  assert.equal(shown.mergeInto, join(dir, 'home', '.kube', 'config'));
  assert.deepEqual(plan, shown);
  const text = io();
  await runSiteReady({ ...base, output: 'table', dryRun: true, parallel: 2 }, text.io, deps);
  assert.match(text.out.join('\n'), /would:\n {2}- connect to r1, r2, r3, r4 over SSH, 2 at a time/);
});

test('site ready --parallel bounds the robots it reaches at once', async () => {
  for (const parallel of [1, 3]) {
    let open = 0;
    let most = 0;
    const deps: BootstrapDeps = {
      readPassword: async () => 'pw',
      connect: async () => {
        open++;
        most = Math.max(most, open);
        await new Promise((r) => setTimeout(r, 20));
        open--;
        // A robot that answers nothing: the wait then times out, which is not what this test is about.
        return {
          run: async () => ({ code: 1, stdout: '', stderr: 'no agent' }),
          close: async () => {},
        } as unknown as CommandRunner;
      },
    };
    await assert.rejects(
      runSiteReady({ ...base, timeoutMs: 0, dryRun: false, parallel }, io().io, deps),
      /did not form/,
    );
    assert.equal(most, parallel, `--parallel ${parallel}`);
  }
});

test('site ready refuses --recheck, which it has no use for, and a bad --parallel', async () => {
  const c = io();
  assert.equal(await main(['site', 'ready', '-f', inventory, '--recheck'], c.io), 2);
  assert.match(c.err.join('\n'), /Unknown argument: recheck/);
  const p = io();
  assert.equal(await main(['site', 'ready', '-f', inventory, '--parallel', '0'], p.io), 2);
  assert.match(p.err.join('\n'), /--parallel/);
});

test('site ready closes every connection it made when one robot cannot be reached', async () => {
  const closed: string[] = [];
  const deps: BootstrapDeps = {
    readPassword: async () => 'pw',
    connect: async (r) => {
      await new Promise((res) => setTimeout(res, r.name === 'r1' ? 1 : 20));
      if (r.name === 'r1') throw new Error('r1 is unreachable');
      return {
        run: async () => ({ code: 1, stdout: '', stderr: '' }),
        close: async () => void closed.push(r.name),
      } as unknown as CommandRunner;
    },
  };
  await assert.rejects(
    runSiteReady({ ...base, timeoutMs: 0, dryRun: false, parallel: 4 }, io().io, deps),
    /r1 is unreachable/,
  );
  assert.deepEqual(closed.sort(), ['r2', 'r3', 'r4']);
});
