import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runInventoryInit } from '../ops/inventory.ts';
import { runBootstrapSite, runUninstallSite } from '../ops/bootstrap.ts';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

const opts = (file: string, output: 'table' | 'json' = 'table') => ({
  file,
  dryRun: true,
  acceptNewHostKeys: false,
  parallel: 4,
  recheck: false,
  output,
  wait: false,
});

test('a dry run straight after inventory init plans, and lists what a real run will need', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-dry-'));
  const file = join(dir, 'site.yaml');
  runInventoryInit({ out: file, force: false, output: 'table' }, io().io);
  // No key files, no ssh-agent, and (in a fresh checkout) no built agent: all a real run needs.
  const env = { HOME: join(dir, 'home') };
  const c = io();
  await runBootstrapSite(opts(file), c.io, { env });
  const text = c.out.join('\n');
  assert.match(text, /bootstrap plan for site dock-a/);
  assert.match(text, /before a real run, fix/);
  assert.match(text, /robots\[0\]\.ssh\.keyFile: .*edgectl_ed25519 does not exist/);
  assert.match(text, /robots\[2\]\.ssh\.agent: SSH_AUTH_SOCK is not set/);
  assert.deepEqual(readdirSync(dir), ['site.yaml'], 'the dry run touched nothing');
  const j = io();
  await runBootstrapSite(opts(file, 'json'), j.io, { env });
  const needs: string[] = JSON.parse(j.out.join('')).needs;
  assert.ok(needs.some((n) => /SSH_AUTH_SOCK/.test(n)));
  const u = io();
  await runUninstallSite({ ...opts(file), yes: false }, u.io, { env });
  assert.match(u.out.join('\n'), /before a real run, fix/);
  // The real run still refuses, before touching anything.
  await assert.rejects(runBootstrapSite({ ...opts(file), dryRun: false }, io().io, { env }), /SSH_AUTH_SOCK/);
  assert.deepEqual(readdirSync(dir), ['site.yaml']);
});
