/**
 * A check that could not run fails: when the multicast probe cannot run on a robot and the
 * inventory has no seeds to fall back on, bootstrap fails instead of reporting success.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { EdgeError } from '../../agent/errors.ts';
import { runBootstrapSite } from '../ops/bootstrap.ts';
import { RobotTwin } from './testing/robot-twin.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-multicast-check-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const elf = Buffer.alloc(64);
elf.writeUInt32BE(0x7f454c46, 0);
elf[5] = 1;
elf.writeUInt16LE(0x3e, 18);
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), elf);
writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });

function inventory(seeds: string): string {
  const path = join(dir, `site-${seeds}.yaml`);
  writeFileSync(
    path,
    stringify({
      site: { id: 'mc' },
      robots: ['r1', 'r2'].map((name, i) => ({
        name,
        address: `10.77.60.${i + 1}`,
        ssh: { user: 'edgectl', keyFile: 'id' },
        serverCapable: true,
      })),
      bundle: { agent: 'agent.mjs', node: 'node' },
      discovery: { seeds },
      controlPlane: { runtime: 'lab', identityDir: '/nonexistent/identity' },
      install: { service: 'none' },
      // Two voters: these tests are about the multicast probe, not failover.
      allowNoFailover: true,
    }),
  );
  return path;
}

async function bootstrap(seeds: string) {
  const err: string[] = [];
  // The twins do not run the probe's Node script: the probe cannot run on them.
  const twins = new Map(['r1', 'r2'].map((n) => [n, new RobotTwin(n)]));
  const run = runBootstrapSite(
    {
      file: inventory(seeds),
      dryRun: false,
      acceptNewHostKeys: true,
      parallel: 2,
      siteDir: join(dir, `sd-${seeds}`),
      recheck: false,
      output: 'table',
      wait: false,
    },
    { out: () => {}, err: (t) => err.push(t) },
    { tty: null, connect: async (r) => twins.get(r.name)!.reopen() },
  );
  return { run, err };
}

test('the probe could not run and there are no seeds: bootstrap fails, naming the robots', async () => {
  const { run } = await bootstrap('none');
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof EdgeError);
    assert.equal(e.code, 'EDGE_MULTICAST_UNCHECKED');
    assert.match(e.message, /r1: .*r2: /);
    assert.match(e.hint ?? '', /discovery\.seeds: voters/);
    return true;
  });
});

test('the probe could not run but the agents have seeds: a warning, and bootstrap succeeds', async () => {
  const { run, err } = await bootstrap('voters');
  await run;
  assert.match(err.join('\n'), /multicast probe: .*fall back to their static seeds/);
});
