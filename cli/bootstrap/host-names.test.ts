/**
 * Robots named by host name (docs/bootstrap.md allows them) work end to end: the name is resolved
 * once, when the plan is made; the address it resolved to is what the robots' configs carry
 * (k3s node-ip, seeds) and what the plan shows. A name that does not resolve, or resolves to an
 * address no robot can have, is a validation error naming the robot and the field. Interface
 * names are checked as the kernel checks them.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError } from '../../agent/errors.ts';
import { main } from '../main.ts';
import {
  runBootstrapSite,
  runResetRobot,
  runRobotAdd,
  runUninstallSite,
  type ApplyCliOptions,
  type BootstrapDeps,
} from '../ops/bootstrap.ts';
import { runInventoryValidate } from '../ops/inventory.ts';
import type { BootstrapPlan } from './plan.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-host-names-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const elf = Buffer.alloc(64);
elf.writeUInt32BE(0x7f454c46, 0);
elf[5] = 1;
elf.writeUInt16LE(0x3e, 18);
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), elf);
writeFileSync(join(dir, 'id'), testPrivateKey(), { mode: 0o600 });

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

function inventory(name: string, addresses: string[], extra: Record<string, unknown> = {}): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    stringify({
      site: { id: 'hosts' },
      robots: addresses.map((address, i) => ({
        name: `r${i + 1}`,
        address,
        ssh: { user: 'edgectl', keyFile: 'id' },
        serverCapable: i < 2,
        ...(i === 2 ? { wifiInterface: 'wlp2s0@1' } : {}),
      })),
      bundle: { agent: 'agent.mjs', node: 'node' },
      discovery: { seeds: 'all' },
      // Two voters: these tests are about addresses, not failover.
      allowNoFailover: true,
      ...extra,
    }),
  );
  return path;
}

const DNS: Record<string, string> = {
  'spot-1.local': '10.20.0.11',
  'spot-2.local': '10.20.0.12',
  'self.local': '127.0.1.1',
};
const lookup = async (host: string) => {
  const ip = DNS[host];
  if (ip === undefined)
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
  return ip;
};
const deps: BootstrapDeps = {
  lookup,
  tty: null,
  connect: async () => assert.fail('a dry run connects to no robot'),
};
const opts = (file: string, over: Partial<ApplyCliOptions> = {}): ApplyCliOptions & { wait: boolean } => ({
  wait: false,
  file,
  dryRun: true,
  acceptNewHostKeys: false,
  parallel: 4,
  siteDir: join(dir, `sitedir-${file.split('/').pop()}`),
  recheck: false,
  output: 'json',
  ...over,
});

const step = (plan: BootstrapPlan, robot: string, id: string) =>
  plan.robots.find((r) => r.target === robot)!.steps.find((s) => s.id === id)!;

test('bootstrap --dry-run resolves host names once and the plan carries and shows the addresses', async () => {
  const file = inventory('hosts.yaml', ['spot-1.local', 'spot-2.local', '10.20.0.13']);
  const c = io();
  const plan = (await runBootstrapSite(opts(file), c.io, deps)) as BootstrapPlan;
  const r1 = plan.robots.find((r) => r.target === 'r1')!;
  assert.equal(r1.address, 'spot-1.local');
  assert.equal(r1.ip, '10.20.0.11');
  const config = step(plan, 'r3', 'config.agent');
  assert.ok(config.kind === 'writeFile');
  // The robots' configs carry the addresses: k3s's node-ip and the seeds.
  assert.match(config.content, /host: 10\.20\.0\.11/);
  assert.match(config.content, /host: 10\.20\.0\.12/);
  assert.match(config.content, /nodeIp: 10\.20\.0\.13/);
  assert.match(config.content, /flannelIface: wlp2s0@1/);
  const r1config = step(plan, 'r1', 'config.agent');
  assert.ok(r1config.kind === 'writeFile');
  assert.match(r1config.content, /nodeIp: 10\.20\.0\.11/);
  const shown = JSON.parse(c.out.join(''));
  assert.equal(shown.robots[0].address, 'spot-1.local');
  assert.equal(shown.robots[0].ip, '10.20.0.11');
  const text = io();
  await runBootstrapSite(opts(file, { output: 'table' }), text.io, deps);
  assert.match(text.out.join('\n'), /^r1\s+spot-1\.local \(10\.20\.0\.11\)\s/m, 'the summary table');
  const one = io();
  await runBootstrapSite(opts(file, { output: 'table', showRobot: 'r1' }), one.io, deps);
  assert.match(one.out.join('\n'), /^r1 \(spot-1\.local, 10\.20\.0\.11\), \d+ steps:/m);
});

test('uninstall, reset and robot add plan host-name robots too', async () => {
  const file = inventory('hosts-remove.yaml', ['spot-1.local', 'spot-2.local', '10.20.0.13']);
  const uninstall = (await runUninstallSite({ ...opts(file), yes: false }, io().io, deps)) as BootstrapPlan;
  assert.equal(uninstall.robots.length, 3);
  const reset = (await runResetRobot(
    { ...opts(file), robot: 'r1', yes: false },
    io().io,
    deps,
  )) as BootstrapPlan;
  assert.equal(reset.robots[0]!.ip, '10.20.0.11');
  const add = (await runRobotAdd({ ...opts(file), robot: 'r3' }, io().io, deps)) as BootstrapPlan;
  assert.equal(add.robots[0]!.target, 'r3');
});

test('inventory validate: a name that does not resolve, or resolves to loopback, names the robot and field', async () => {
  const file = inventory('unresolved.yaml', ['spot-1.local', 'nowhere.local', 'self.local']);
  await assert.rejects(runInventoryValidate({ file, output: 'table' }, io().io, { lookup }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    const all = e.problems.join('\n');
    assert.match(
      all,
      /robots\[1\]\.address: nowhere\.local does not resolve to an IPv4 address \(ENOTFOUND\)/,
    );
    assert.match(
      all,
      /robots\[2\]\.address: self\.local resolves to 127\.0\.1\.1, which is a loopback address/,
    );
    return true;
  });
  const ok = io();
  await runInventoryValidate(
    { file: inventory('resolved.yaml', ['spot-1.local', 'spot-2.local', '10.20.0.13']), output: 'table' },
    ok.io,
    { lookup },
  );
  assert.match(ok.out.join('\n'), /spot-1\.local:22 \(10\.20\.0\.11\)/);
});

test('through the CLI with the system resolver: localhost is refused as loopback, exit 2', async () => {
  const c = io();
  const code = await main(
    ['inventory', 'validate', '-f', inventory('localhost.yaml', ['localhost', '10.20.0.12', '10.20.0.13'])],
    c.io,
  );
  assert.equal(code, 2, c.err.join('\n'));
  assert.match(
    c.err.join('\n'),
    /robots\[0\]\.address: localhost resolves to 127\.0\.0\.1, which is a loopback address/,
  );
});

test('interface names are checked as the kernel checks them', async () => {
  const bad = (wifiInterface: string) =>
    inventory(`if-${Buffer.from(wifiInterface).toString('hex')}.yaml`, ['10.20.0.11'], {
      robots: [
        {
          name: 'r1',
          address: '10.20.0.11',
          ssh: { user: 'edgectl', keyFile: 'id' },
          serverCapable: true,
          wifiInterface,
        },
      ],
    });
  for (const name of ['wlan:0', 'a/b', 'wl an0', '.', '..', 'wlan0123456789ab', 'wlanéééééééé']) {
    const c = io();
    assert.equal(await main(['inventory', 'validate', '-f', bad(name)], c.io), 2, name);
    assert.match(c.err.join('\n'), /robots\[0\]\.wifiInterface: /, name);
  }
});

test("a host name that lands on another robot's address is refused, in either order", async () => {
  for (const [a, b] of [
    ['spot-1.local', '10.20.0.11'],
    ['10.20.0.11', 'spot-1.local'],
  ]) {
    await assert.rejects(
      runInventoryValidate(
        { file: inventory(`dup-${a}.yaml`, [a!, b!, '10.20.0.13']), output: 'table' },
        io().io,
        {
          lookup,
        },
      ),
      (e: unknown) =>
        e instanceof ConfigError && /robots\[1\]\.address: .*the address of robots\[0\]/.test(e.message),
    );
  }
});
