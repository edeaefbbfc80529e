import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBootstrapSite } from '../ops/bootstrap.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-sudo-file-'));
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
const elf = Buffer.alloc(64);
elf.writeUInt32BE(0x7f454c46, 0);
elf[5] = 1;
elf.writeUInt16LE(0x3e, 18);
writeFileSync(join(dir, 'node'), elf);
writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });
writeFileSync(
  join(dir, 'site.yaml'),
  JSON.stringify({
    site: { id: 'sudo' },
    bundle: { agent: 'agent.mjs', node: 'node' },
    controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/sudo/identity' },
    robots: [
      {
        name: 'r1',
        address: '10.77.50.1',
        ssh: { user: 'e', keyFile: 'id' },
        sudo: 'password',
        serverCapable: true,
      },
    ],
  }),
);

async function refused(content: string, mode: number, message: RegExp) {
  const file = join(dir, `pw-${mode.toString(8)}-${content.length}`);
  writeFileSync(file, content, { mode });
  let connected = false;
  await assert.rejects(
    runBootstrapSite(
      {
        file: join(dir, 'site.yaml'),
        dryRun: false,
        acceptNewHostKeys: false,
        parallel: 1,
        recheck: false,
        output: 'table',
        wait: false,
        siteDir: join(dir, 'sitedir'),
        sudoPasswordFile: file,
      },
      { out: () => {}, err: () => {} },
      {
        connect: async () => {
          connected = true;
          throw new Error('no robot in this test');
        },
      },
    ),
    (e: Error & { exitCode?: number }) => message.test(e.message) && e.exitCode === 2,
  );
  assert.equal(connected, false, 'refused before any robot is touched');
}

test('an empty --sudo-password-file is refused', async () => {
  await refused('', 0o600, /--sudo-password-file .* is empty/);
  await refused('\nsecond-line\n', 0o600, /is empty/);
});

test('a --sudo-password-file others may read is refused', async () => {
  await refused('secret\n', 0o644, /may be read by others \(mode 0644\)/);
});
