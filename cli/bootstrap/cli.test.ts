/**
 * The bootstrap commands end to end through cli/main.ts and cli/ops/, with robots as in-memory
 * twins (the SSH runner has its own tests against a real sshd: test/integration/ssh-runner.test.ts).
 */
import assert from 'node:assert/strict';
import fs, {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, mock, test } from 'node:test';
import { stringify } from 'yaml';
import { ConfigError, EdgeError } from '../../agent/errors.ts';
import { main } from '../main.ts';
import { parseRobotKeyFile } from '../../agent/site-key.ts';
import {
  runBootstrapSite,
  runRobotAdd,
  runRobotRemove,
  runRotateKeys,
  runResetRobot,
  type ApplyCliOptions,
  type BootstrapDeps,
} from '../ops/bootstrap.ts';
import { validateAgentConfig } from '../../agent/config.ts';
import { runInventoryValidate } from '../ops/inventory.ts';
import type { ApplyReport } from './apply.ts';
import { loadInventory } from './inventory-files.ts';
import { renderAgentConfig } from './inventory.ts';
import { RobotTwin, twinSiteMembers } from './testing/robot-twin.ts';
import { testPrivateKey } from './testing/test-key.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-bootstrap-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

// A bundle small enough to hash quickly: the agent, and a "Node runtime" with an x86_64 ELF header.
const elf = Buffer.alloc(64);
elf.writeUInt32BE(0x7f454c46, 0);
elf[5] = 1;
elf.writeUInt16LE(0x3e, 18);
writeFileSync(join(dir, 'agent.mjs'), 'export {};\n');
writeFileSync(join(dir, 'node'), elf);
writeFileSync(join(dir, 'id_ed25519'), testPrivateKey(), { mode: 0o600 });

function writeInventory(name: string, over: Record<string, unknown> = {}): string {
  const path = join(dir, name);
  const robots = ['r1', 'r2', 'r3'].map((n, i) => ({
    name: n,
    address: `10.77.30.${i + 1}`,
    ssh: { user: 'edgectl', keyFile: 'id_ed25519' },
    sudo: n === 'r2' ? 'password' : 'nopasswd',
    serverCapable: true,
  }));
  writeFileSync(
    path,
    stringify({
      site: { id: 'cli-lab' },
      robots,
      bundle: { agent: 'agent.mjs', node: 'node' },
      // The lab runtime: these tests are about the executor and the CLI; the k3s plans run against
      // their robot model in agent/k3s/, and the k3s installer is checked in plan.test.ts.
      controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/cli-lab/identity' },
      ...over,
    }),
  );
  return path;
}

// The in-memory robots run no agents: these tests stop after the install (no waiting for the site).
const opts = (file: string, over: Partial<ApplyCliOptions> = {}): ApplyCliOptions & { wait: boolean } => ({
  wait: false,
  file,
  dryRun: false,
  acceptNewHostKeys: false,
  parallel: 3,
  siteDir: join(dir, `sitedir-${file.split('/').pop()}`),
  recheck: false,
  output: 'table',
  ...over,
});

function twins(failing?: string) {
  const members = twinSiteMembers('r1');
  const map = new Map(
    ['r1', 'r2', 'r3'].map((n) => [
      n,
      new RobotTwin(
        n,
        n === failing
          ? {
              members,
              failPreflight: {
                match: /uname -m/,
                stderr: 'the robot is aarch64, the bundled Node runtime is for x86_64\n',
              },
            }
          : { members },
      ),
    ]),
  );
  let connects = 0;
  let passwordReads = 0;
  const deps: BootstrapDeps = {
    connect: async (r, _l, ctx) => {
      connects++;
      if (r.sudo === 'password') assert.equal(ctx.sudoPassword, 'from-the-prompt');
      return map.get(r.name)!.reopen();
    },
    readPassword: async () => {
      passwordReads++;
      return 'from-the-prompt';
    },
    tty: null,
  };
  return { map, deps, members, connects: () => connects, passwordReads: () => passwordReads };
}

test('inventory init writes the example, which validates; it never overwrites without --force', async () => {
  const out = join(dir, 'init.yaml');
  assert.equal(await main(['inventory', 'init', '--out', out], io().io), 0);
  assert.equal(
    readFileSync(out, 'utf8'),
    readFileSync(new URL('../../templates/inventory/site.example.yaml', import.meta.url), 'utf8'),
  );
  const again = io();
  assert.equal(await main(['inventory', 'init', '--out', out], again.io), 2);
  assert.match(again.err.join('\n'), /--force/);
  assert.equal(await main(['inventory', 'init', '--out', out, '--force'], io().io), 0);
});

test('inventory validate: a summary of a valid inventory, every problem of a broken one', async () => {
  const good = io();
  assert.equal(
    await main(['inventory', 'validate', '-f', writeInventory('valid.yaml'), '--output', 'json'], good.io),
    0,
  );
  const v = JSON.parse(good.out.join(''));
  assert.equal(v.site, 'cli-lab');
  assert.deepEqual(
    v.robots.map((r: { name: string; voter: boolean }) => [r.name, r.voter]),
    [
      ['r1', true],
      ['r2', true],
      ['r3', true],
    ],
  );
  const broken = writeInventory('broken.yaml', {
    robots: [{ name: 'r1', address: '10.0.0.1', ssh: { user: 'edgectl', keyFile: 'missing' } }],
  });
  const bad = io();
  assert.equal(await main(['inventory', 'validate', '-f', broken], bad.io), 2);
  const err = bad.err.join('\n');
  assert.match(err, /robots: no robot is server-capable/);
});

test('--dry-run prints the plan and touches nothing: no SSH, no site directory', async () => {
  const file = writeInventory('dry.yaml');
  const t = twins();
  const c = io();
  const siteDir = join(dir, 'dry-site');
  await runBootstrapSite(opts(file, { dryRun: true, siteDir }), c.io, t.deps);
  assert.equal(t.connects(), 0);
  assert.equal(t.passwordReads(), 0);
  assert.equal(existsSync(siteDir), false);
  const text = c.out.join('\n');
  assert.match(text, /^r1\s+10\.77\.30\.1\s+.*\s29$/m, 'a table of robots × phases');
  assert.match(text, /site identity: not generated yet/);
  const one = io();
  await runBootstrapSite(opts(file, { dryRun: true, siteDir, showRobot: 'r1' }), one.io, t.deps);
  assert.match(one.out.join('\n'), /r1 \(10\.77\.30\.1\), 29 steps/);
  assert.doesNotMatch(one.out.join('\n'), /^r2 \(/m);
  assert.equal(existsSync(siteDir), false);
});

test('--dry-run --output json through the CLI is the plan artifact, without secrets', async () => {
  const file = writeInventory('dry-json.yaml');
  const c = io();
  const code = await main(
    ['bootstrap', 'site', '-f', file, '--dry-run', '--output', 'json', '--site-dir', join(dir, 'dj')],
    c.io,
  );
  assert.equal(code, 0, c.err.join('\n'));
  const plan = JSON.parse(c.out.join(''));
  assert.equal(plan.kind, 'bootstrap');
  assert.equal(plan.robots.length, 3);
  const key = plan.robots[0].steps.find((s: { id: string }) => s.id === 'secret.site-keys');
  assert.equal(key.content, undefined);
  assert.match(key.sha256, /^[0-9a-f]{64}$/);
  assert.equal(key.mode, '0600');
  assert.equal(existsSync(join(dir, 'dj')), false);
});

test('a bad inventory is rejected before any robot is touched', async () => {
  const file = writeInventory('bad.yaml', {
    robots: [
      {
        name: 'r1',
        address: '10.77.30.1',
        ssh: { user: 'edgectl', keyFile: 'no-such-key' },
        serverCapable: true,
      },
      {
        name: 'r2',
        address: '10.77.30.2',
        ssh: { user: 'edgectl', keyFile: 'id_ed25519' },
        serverCapable: true,
      },
    ],
  });
  const t = twins();
  const siteDir = join(dir, 'bad-site');
  await assert.rejects(runBootstrapSite(opts(file, { siteDir }), io().io, t.deps), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.problems.join('\n'), /robots\[0\]\.ssh\.keyFile: .*no-such-key does not exist/);
    return true;
  });
  assert.equal(t.connects(), 0);
  assert.equal(existsSync(siteDir), false);
  const c = io();
  assert.equal(await main(['bootstrap', 'site', '-f', file], c.io), 2);
  assert.match(c.err.join('\n'), /no-such-key does not exist/);
});

test('an agent whose chunk is missing is rejected before any robot is touched', async () => {
  writeFileSync(join(dir, 'split-agent.mjs'), 'const r=()=>import("./edgectl-agent-GONE.mjs");\n');
  const file = writeInventory('split.yaml', { bundle: { agent: 'split-agent.mjs', node: 'node' } });
  const t = twins();
  await assert.rejects(runBootstrapSite(opts(file), io().io, t.deps), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(
      e.problems.join('\n'),
      /^bundle\.agent: the agent's chunk .*edgectl-agent-GONE\.mjs is missing: split-agent\.mjs imports it: run npm run build:agent/,
    );
    return true;
  });
  assert.equal(t.connects(), 0);
});

test('apply: the site key is made once (0600), the sudo password read once, a second run changes nothing', async () => {
  const file = writeInventory('apply.yaml');
  const t = twins();
  const o = opts(file);
  const first = (await runBootstrapSite(o, io().io, t.deps)) as ApplyReport;
  assert.ok(first.robots.every((r) => r.ok));
  assert.equal(t.passwordReads(), 1);
  const key = join(o.siteDir!, 'site.key');
  assert.equal(statSync(key).mode & 0o777, 0o600);
  assert.equal(statSync(o.siteDir!).mode & 0o777, 0o700);
  const keyText = readFileSync(key, 'utf8');
  // The master secret stays here: r3 gets its own keys, derived from it.
  const r3Keys = t.map.get('r3')!.files.get('/etc/edgectl/site-keys.json')!.content.toString();
  assert.equal(parseRobotKeyFile(r3Keys, 'r3').node, 'r3');
  assert.ok(!r3Keys.includes(keyText.trim()));
  for (const r of t.map.values())
    assert.ok(![...r.files.values()].some((f) => f.content.includes(keyText.trim())));
  assert.equal(statSync(join(o.siteDir!, 'state', 'r1.json')).mode & 0o777, 0o600);

  const c = io();
  const second = (await runBootstrapSite({ ...o, output: 'json' }, c.io, t.deps)) as ApplyReport;
  assert.ok(second.robots.every((r) => r.ok && r.outcomes.changed === 0));
  assert.equal(readFileSync(key, 'utf8'), keyText);
  const events = c.out.map((l) => JSON.parse(l) as { type: string });
  assert.equal(events[0]!.type, 'apply.start');
  assert.equal(events.at(-1)!.type, 'report');
});

test('with --wait on, the inventory is read once and the sudo password asked for once, the wait included', async () => {
  const file = writeInventory('wait.yaml');
  const t = twins();
  const o = opts(file, { siteDir: join(dir, 'wait-site') });
  // Count the reads of the inventory file (the ES bindings of node:fs follow the mock once synced).
  const read = mock.method(fs, 'readFileSync');
  syncBuiltinESMExports();
  let failure: unknown;
  try {
    // The in-memory robots run no agents, so the wait gives up at once; what matters is what it read.
    await runBootstrapSite({ ...o, wait: true, timeoutMs: 1 }, io().io, t.deps).catch((e) => (failure = e));
  } finally {
    read.mock.restore();
    syncBuiltinESMExports();
  }
  assert.ok(failure instanceof EdgeError, String(failure));
  assert.match(failure.code, /READY|TIMEOUT|WAIT/, 'the run got as far as the wait for the site');
  assert.equal(
    read.mock.calls.filter((call) => call.arguments[0] === file).length,
    1,
    'the inventory is read once',
  );
  assert.equal(t.passwordReads(), 1, 'the sudo password is asked for once per run');
});

test('a failed robot makes the command fail with its report; the others are installed', async () => {
  const file = writeInventory('fail.yaml');
  const t = twins('r2');
  const c = io();
  await assert.rejects(runBootstrapSite(opts(file), c.io, t.deps), { code: 'EDGE_BOOTSTRAP_INCOMPLETE' });
  const report = c.out.join('\n');
  assert.match(report, /r2 failed at preflight\.arch/);
  assert.match(report, /the robot is aarch64/);
  assert.match(report, /ssh edgectl@10\.77\.30\.2 'sudo sh -c/);
  assert.match(report, /edgectl bootstrap site -f .*fail\.yaml .* # resumes at preflight\.arch/);
  assert.ok(t.map.get('r1')!.active.has('edgectl-agent.service'));
  assert.ok(t.map.get('r3')!.active.has('edgectl-agent.service'));
});

test('reset needs --yes; with it, it removes one robot’s install and no other', async () => {
  const file = writeInventory('reset.yaml');
  const t = twins();
  const o = opts(file);
  await runBootstrapSite(o, io().io, t.deps);
  await assert.rejects(runResetRobot({ ...o, robot: 'r2', yes: false }, io().io, t.deps), {
    code: 'EDGE_CONFIRM',
  });
  const dry = io();
  await runResetRobot({ ...o, robot: 'r2', yes: false, dryRun: true, output: 'json' }, dry.io, t.deps);
  assert.deepEqual(
    JSON.parse(dry.out.join('')).robots.map((r: { target: string }) => r.target),
    ['r2'],
  );
  await runResetRobot({ ...o, robot: 'r2', yes: true }, io().io, t.deps);
  assert.equal(t.map.get('r2')!.files.size, 0);
  assert.ok(t.map.get('r1')!.files.size > 0);
  await assert.rejects(runResetRobot({ ...o, robot: 'r9', yes: true }, io().io, t.deps), {
    code: 'EDGE_NO_SUCH_ROBOT',
  });
});

test('a world-readable site key in the site directory is refused', async () => {
  const file = writeInventory('perm.yaml');
  const t = twins();
  const o = opts(file);
  await runBootstrapSite(o, io().io, t.deps);
  chmodSync(join(o.siteDir!, 'site.key'), 0o644);
  await assert.rejects(
    runBootstrapSite(o, io().io, t.deps),
    (e: unknown) => e instanceof ConfigError && /chmod 600/.test(e.message),
  );
});

test('robot add and remove change a running site by one learner, and refuse to change the voters', async () => {
  // Two voters: this test is about learners, so it accepts a site without failover.
  const file = writeInventory('grow.yaml', { voters: ['r1', 'r2'], allowNoFailover: true });
  const t = twins();
  const o = opts(file);
  await runBootstrapSite(o, io().io, t.deps);
  const before = { r1: t.map.get('r1')!.files.size, r2: t.map.get('r2')!.files.size };

  await assert.rejects(runRobotRemove({ ...o, robot: 'r3', yes: false }, io().io, t.deps), {
    code: 'EDGE_CONFIRM',
  });
  await runRobotRemove({ ...o, robot: 'r3', yes: true }, io().io, t.deps);
  assert.equal(t.map.get('r3')!.files.size, 0, 'r3 is uninstalled');
  assert.deepEqual(t.members.history, [[]], 'the leader committed a membership without r3');
  assert.deepEqual({ r1: t.map.get('r1')!.files.size, r2: t.map.get('r2')!.files.size }, before);

  // The voters refuse r3 from now on: their key files list it, and they reloaded them.
  for (const v of ['r1', 'r2']) {
    const f = parseRobotKeyFile(
      t.map.get(v)!.files.get('/etc/edgectl/site-keys.json')!.content.toString(),
      v,
    );
    assert.deepEqual(f.refused, ['r3']);
    assert.ok(t.map.get(v)!.systemctl.includes('kill --signal=HUP --kill-whom=main edgectl-agent.service'));
  }
  // Its keys of this generation are burnt: it comes back only under the next one.
  await assert.rejects(runRobotAdd({ ...o, robot: 'r3' }, io().io, t.deps), { code: 'EDGE_ROBOT_REFUSED' });
  // So is a whole-site bootstrap while r3 is still listed: it would get keys the voters refuse.
  await assert.rejects(runBootstrapSite(o, io().io, t.deps), { code: 'EDGE_ROBOT_REFUSED' });
  await runRotateKeys(o, io().io, t.deps);

  const connects = t.connects();
  const voterKeys = () =>
    ['r1', 'r2'].map((v) => t.map.get(v)!.files.get('/etc/edgectl/site-keys.json')!.content);
  const keysBefore = voterKeys();
  await runRobotAdd({ ...o, robot: 'r3' }, io().io, t.deps);
  // The new robot is installed; the voters are only asked, the leader to commit the membership.
  assert.equal(t.connects() - connects, 2, 'the new robot, and the leader r1 (which names itself)');
  assert.deepEqual(t.members.history, [[], ['r3']], 'the leader committed a membership with r3');
  assert.deepEqual(voterKeys(), keysBefore, "no voter's keys change");
  assert.ok(t.map.get('r3')!.active.has('edgectl-agent.service'));
  const r3 = parseRobotKeyFile(
    t.map.get('r3')!.files.get('/etc/edgectl/site-keys.json')!.content.toString(),
    'r3',
  );
  assert.deepEqual([r3.role, r3.send, r3.generations.map((g) => g.id)], ['worker', 2, [2]]);

  for (const run of [
    () => runRobotAdd({ ...o, robot: 'r1' }, io().io, t.deps),
    () => runRobotRemove({ ...o, robot: 'r2', yes: true }, io().io, t.deps),
  ])
    await assert.rejects(run(), { code: 'EDGE_VOTER_CHANGE' });
  await assert.rejects(
    runRobotAdd({ ...o, robot: 'r9' }, io().io, t.deps),
    (e: unknown) => e instanceof Error && 'hint' in e && /add it to robots:/.test(String(e.hint)),
  );
});

test('a site of two voters is refused where it is defined unless it has a witness or accepts no failover', async () => {
  const two = writeInventory('two.yaml', { voters: ['r1', 'r2'] });
  const refused = (e: unknown) =>
    e instanceof ConfigError &&
    /2 voters: survives no voter loss/.test(e.message) &&
    /witnesses/.test(e.message);
  await assert.rejects(runInventoryValidate({ file: two, output: 'table' }, io().io), refused);
  await assert.rejects(runBootstrapSite({ ...opts(two), dryRun: true }, io().io, twins().deps), refused);

  const witnessed = writeInventory('witnessed.yaml', { voters: ['r1', 'r2'], witnesses: ['r3'] });
  const out = io();
  await runInventoryValidate({ file: witnessed, output: 'table' }, out.io);
  assert.match(out.out.join('\n'), /quorum: 2 voters \+ 1 witness: survives the loss of 1 voter/);
  assert.match(out.out.join('\n'), /r3\s.*witness/);

  const accepted = writeInventory('accepted.yaml', { voters: ['r1', 'r2'], allowNoFailover: true });
  const out2 = io();
  await runInventoryValidate({ file: accepted, output: 'table' }, out2.io);
  assert.match(out2.out.join('\n'), /quorum: 2 voters: survives no voter loss/);
  assert.match(out2.out.join('\n'), /warning: 2 votes is an even count/);
});

test('a witness gets the agent and no k3s: its agent runs no control plane', async () => {
  const file = writeInventory('witness-plan.yaml', { voters: ['r1', 'r2'], witnesses: ['r3'] });
  const { inventory } = loadInventory(file);
  const config = validateAgentConfig(renderAgentConfig(inventory, 'r3'));
  assert.equal(config.controlPlane.runtime, 'none');
  assert.deepEqual(config.witnesses, ['r3']);
  assert.deepEqual(validateAgentConfig(renderAgentConfig(inventory, 'r1')).witnesses, ['r3']);
});

test('site rotate-keys: the dry run shows three phases and touches nothing; the apply walks every robot through them, and resumes where it stopped', async () => {
  const file = writeInventory('rotate.yaml', { voters: ['r1', 'r2'], allowNoFailover: true });
  const t = twins();
  const o = opts(file);
  await runBootstrapSite(o, io().io, t.deps);
  const keysOf = (r: string) =>
    parseRobotKeyFile(t.map.get(r)!.files.get('/etc/edgectl/site-keys.json')!.content.toString(), r);
  const generations = (r: string) => {
    const k = keysOf(r);
    return { send: k.send, accept: k.generations.map((g) => g.id) };
  };

  const connects = t.connects();
  const dry = io();
  await runRotateKeys({ ...o, dryRun: true }, dry.io, t.deps);
  assert.equal(t.connects(), connects, 'a dry run connects to no robot');
  const text = dry.out.join('\n');
  assert.match(text, /phase 1 of 3, accept: robots send generation 1, accept 1 and 2/);
  assert.match(text, /phase 2 of 3, send: robots send generation 2, accept 2 and 1/);
  assert.match(text, /phase 3 of 3, retire: robots send generation 2, accept 2\n/);
  assert.match(text, /systemctl kill --signal=HUP --kill-whom=main edgectl-agent\.service/);
  assert.deepEqual(generations('r1'), { send: 1, accept: [1] });
  // The same through the command line.
  const cli = io();
  assert.equal(
    await main(['site', 'rotate-keys', '-f', file, '--dry-run', '--site-dir', o.siteDir!], cli.io),
    0,
    cli.err.join('\n'),
  );
  assert.match(cli.out.join('\n'), /phase 3 of 3, retire/);

  // r2's connection drops at its first reload: the accept phase stops there, and is resumed.
  t.map.get('r2')!.dropAt = 'kill';
  await assert.rejects(runRotateKeys(o, io().io, t.deps), { code: 'EDGE_KEYS_INCOMPLETE' });
  assert.deepEqual(generations('r1'), { send: 1, accept: [2, 1] }, 'r1 accepts both, sends the old');
  const report = (await runRotateKeys({ ...o, output: 'json' }, io().io, t.deps)) as {
    generation: number;
    phases: string[];
  };
  assert.deepEqual(report, { type: 'keys.rotated', generation: 2, phases: ['accept', 'send', 'retire'] });
  for (const r of ['r1', 'r2', 'r3']) {
    assert.deepEqual(generations(r), { send: 2, accept: [2] }, r);
    // One reload per phase that changed the file, and no restart.
    const systemctl = t.map.get(r)!.systemctl;
    assert.equal(
      systemctl.filter((c) => c.startsWith('kill --signal=HUP')).length,
      3,
      `${r}: ${systemctl.join('; ')}`,
    );
    assert.equal(
      systemctl.filter((c) => c.startsWith('restart')).length,
      1,
      `${r} restarted at bootstrap only`,
    );
  }
  // A bootstrap run after the rotation installs the same keys: nothing changes.
  const again = (await runBootstrapSite(o, io().io, t.deps)) as ApplyReport;
  assert.ok(again.robots.every((r) => r.outcomes.changed === 0));
});

test('site rotate-keys does not start a phase before every agent reports the last one', async () => {
  const file = writeInventory('rotate-stuck.yaml', { voters: ['r1', 'r2'], allowNoFailover: true });
  const t = twins();
  const o = opts(file);
  await runBootstrapSite(o, io().io, t.deps);
  // r2's agent keeps its old keys (a key file it cannot load): the accept phase stops at r2.
  t.map.get('r2')!.ignoreReload = true;
  const c = io();
  await assert.rejects(runRotateKeys(o, c.io, t.deps), { code: 'EDGE_KEYS_INCOMPLETE' });
  assert.match(c.out.join('\n'), /r2 failed at service\.keys-loaded/);
  const sends = (r: string) =>
    parseRobotKeyFile(t.map.get(r)!.files.get('/etc/edgectl/site-keys.json')!.content.toString(), r).send;
  assert.deepEqual(['r1', 'r2', 'r3'].map(sends), [1, 1, 1], 'no robot sends with the new generation');
  t.map.get('r2')!.ignoreReload = false;
  await runRotateKeys(o, io().io, t.deps);
  assert.deepEqual(['r1', 'r2', 'r3'].map(sends), [2, 2, 2]);
});

test('site rotate-keys without systemd: one phase per run, the operator signals the agents in between', async () => {
  const file = writeInventory('rotate-none.yaml', {
    voters: ['r1', 'r2'],
    allowNoFailover: true,
    install: { service: 'none' },
  });
  const t = twins();
  const o = opts(file);
  await runBootstrapSite({ ...o, wait: false }, io().io, t.deps);
  const runs = [];
  for (let i = 0; i < 3; i++) runs.push(await runRotateKeys({ ...o, output: 'json' }, io().io, t.deps));
  assert.deepEqual(runs, [
    { type: 'keys.phase-done', phase: 'accept', next: 'send' },
    { type: 'keys.phase-done', phase: 'send', next: 'retire' },
    { type: 'keys.rotated', generation: 2, phases: ['retire'] },
  ]);
  const keys = parseRobotKeyFile(
    t.map.get('r3')!.files.get('/etc/edgectl/site-keys.json')!.content.toString(),
    'r3',
  );
  assert.deepEqual([keys.send, keys.generations.map((g) => g.id)], [2, [2]]);
  assert.ok(![...t.map.values()].some((r) => r.systemctl.some((c) => c.startsWith('kill'))));
});
