/**
 * The first `bootstrap site --dry-run` of a site shows every step the real run then does, the
 * k3s identity steps included (their secrets as placeholders), and touches nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { runBootstrapSite, type ApplyCliOptions, type BootstrapDeps } from '../ops/bootstrap.ts';
import { RobotTwin } from './testing/robot-twin.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-dry-run-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const elf = Buffer.alloc(64);
elf.writeUInt32BE(0x7f454c46, 0);
elf[5] = 1;
elf.writeUInt16LE(0x3e, 18);
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), elf);
writeFileSync(join(dir, 'k3s'), 'not really k3s\n');
for (const b of ['etcd', 'etcdctl', 'edgectl-etcd-revision-bump'])
  writeFileSync(join(dir, b), `not really ${b}\n`);
writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });
const inventory = join(dir, 'site.yaml');
writeFileSync(
  inventory,
  stringify({
    site: { id: 'fresh' },
    robots: ['r1', 'r2', 'r3'].map((name, i) => ({
      name,
      address: `10.77.40.${i + 1}`,
      ssh: { user: 'edgectl', keyFile: 'id' },
      serverCapable: i < 2,
    })),
    bundle: {
      agent: 'agent.mjs',
      node: 'node',
      k3s: 'k3s',
      etcd: 'etcd',
      etcdctl: 'etcdctl',
      etcdRevisionBump: 'edgectl-etcd-revision-bump',
    },
    install: { service: 'none' },
    // Two voters: these tests are about the plan's steps, not failover.
    allowNoFailover: true,
  }),
);

function io() {
  const out: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: () => {} }, out };
}

const siteDir = join(dir, 'site-dir');
const opts = (dryRun: boolean): ApplyCliOptions & { wait: boolean } => ({
  wait: false,
  file: inventory,
  dryRun,
  acceptNewHostKeys: true,
  parallel: 3,
  siteDir,
  recheck: false,
  output: 'json',
});

test('dry-run steps == real-run steps for a fresh k3s site, identity steps included', async () => {
  const dry = io();
  await runBootstrapSite(opts(true), dry.io, {
    tty: null,
    connect: async () => assert.fail('a dry run connects to no robot'),
  });
  assert.ok(!existsSync(siteDir), 'a dry run creates no site directory');
  const planned = JSON.parse(dry.out.join('')) as {
    identity: string;
    robots: { target: string; steps: { id: string }[] }[];
  };
  assert.equal(planned.identity, 'not generated');
  const dryIds = Object.fromEntries(planned.robots.map((r) => [r.target, r.steps.map((s) => s.id)]));
  assert.ok(
    dryIds['r1']!.some((id) => id.startsWith('k3s.identity-')),
    'the identity steps are shown',
  );
  for (const id of ['k3s.etcd-binary', 'k3s.etcdctl-binary', 'k3s.revision-bump-binary', 'k3s.unit-etcd'])
    assert.ok(dryIds['r1']!.includes(id), `a voter gets ${id}, and the dry run shows it`);
  assert.ok(
    !dryIds['r3']!.some((id) => /etcd/.test(id)),
    'a worker gets no etcd: it never holds the datastore',
  );

  // The twin models files and systemd; the k3s plan's fence is a `touch` it does not model.
  const twins = new Map(
    ['r1', 'r2', 'r3'].map((n) => [
      n,
      new RobotTwin(n).handle('touch', () => ({ code: 0, stdout: '', stderr: '' })),
    ]),
  );
  const deps: BootstrapDeps = { tty: null, connect: async (r) => twins.get(r.name)!.reopen() };
  const real = io();
  await runBootstrapSite(opts(false), real.io, deps);
  const events = real.out.flatMap((l) => l.split('\n')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const ran: Record<string, string[]> = {};
  for (const e of events)
    if (e['type'] === 'step.start') (ran[e['robot'] as string] ??= []).push(e['step'] as string);
  const report = events.find((e) => e['type'] === 'report') as { robots: { ok: boolean }[] };
  assert.ok(
    report.robots.every((r) => r.ok),
    JSON.stringify(report),
  );
  assert.deepEqual(ran, dryIds);
});

test('preflight.time fails where it cannot look at the clock (no timedatectl), as every check that cannot run', async () => {
  const systemd = join(dir, 'site-systemd.yaml');
  writeFileSync(systemd, readFileSync(inventory, 'utf8').replace('service: none', 'service: systemd'));
  const c = io();
  await runBootstrapSite({ ...opts(true), file: systemd, siteDir: join(dir, 'other') }, c.io, {
    tty: null,
    connect: async () => assert.fail('a dry run connects to no robot'),
  });
  const plan = JSON.parse(c.out.join('')) as { robots: { steps: { id: string; argv?: string[] }[] }[] };
  const time = plan.robots[0]!.steps.find((s) => s.id === 'preflight.time')!;
  assert.equal(time.argv![0], 'sh');
  // Run the check's own script in a shell whose PATH has no timedatectl.
  assert.throws(
    () => execFileSync('/bin/sh', [...time.argv!.slice(1)], { env: { PATH: '/nonexistent' }, stdio: 'pipe' }),
    (e: { status: number; stderr: Buffer }) =>
      e.status === 1 && /timedatectl is missing/.test(e.stderr.toString()),
  );
});
