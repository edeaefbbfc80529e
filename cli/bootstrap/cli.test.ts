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
import {
  runBootstrapSite,
  runRobotAdd,
  runRobotRemove,
  runResetRobot,
  type ApplyCliOptions,
  type BootstrapDeps,
} from '../ops/bootstrap.ts';
import type { ApplyReport } from './apply.ts';
import { RobotTwin } from './testing/robot-twin.ts';

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
writeFileSync(join(dir, 'id_ed25519'), 'not really a key\n', { mode: 0o600 });

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
  const map = new Map(
    ['r1', 'r2', 'r3'].map((n) => [
      n,
      new RobotTwin(
        n,
        n === failing
          ? {
              failPreflight: {
                match: /uname -m/,
                stderr: 'the robot is aarch64, the bundled Node runtime is for x86_64\n',
              },
            }
          : {},
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
  return { map, deps, connects: () => connects, passwordReads: () => passwordReads };
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
  assert.match(text, /r1 \(10\.77\.30\.1\), 28 steps/);
  assert.match(text, /site identity: not generated yet/);
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
  const key = plan.robots[0].steps.find((s: { id: string }) => s.id === 'secret.site-key');
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
  assert.equal(t.map.get('r3')!.files.get('/etc/edgectl/site.key')!.content.toString(), keyText);
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
  const c = io();
  try {
    // The in-memory robots run no agents, so the wait gives up at once; what matters is what it read.
    await assert.rejects(
      runBootstrapSite({ ...o, wait: true, timeoutMs: 1 }, c.io, t.deps),
      (e: unknown) => e instanceof EdgeError && e.code !== 'EDGE_BOOTSTRAP_INCOMPLETE',
    );
  } finally {
    read.mock.restore();
    syncBuiltinESMExports();
  }
  assert.ok(
    c.err.some((l) => l.startsWith('waiting:')) || c.out.some((l) => l.includes('waiting')),
    'the run waited for the site',
  );
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
  const file = writeInventory('grow.yaml', { voters: ['r1', 'r2'] });
  const t = twins();
  const o = opts(file);
  await runBootstrapSite(o, io().io, t.deps);
  const before = { r1: t.map.get('r1')!.files.size, r2: t.map.get('r2')!.files.size };

  await assert.rejects(runRobotRemove({ ...o, robot: 'r3', yes: false }, io().io, t.deps), {
    code: 'EDGE_CONFIRM',
  });
  await runRobotRemove({ ...o, robot: 'r3', yes: true }, io().io, t.deps);
  assert.equal(t.map.get('r3')!.files.size, 0, 'r3 is uninstalled');
  assert.deepEqual({ r1: t.map.get('r1')!.files.size, r2: t.map.get('r2')!.files.size }, before);

  const connects = t.connects();
  await runRobotAdd({ ...o, robot: 'r3' }, io().io, t.deps);
  assert.equal(t.connects() - connects, 1, 'only the new robot is touched');
  assert.ok(t.map.get('r3')!.active.has('edgectl-agent.service'));

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
