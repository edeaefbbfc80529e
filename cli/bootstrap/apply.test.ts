import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { applyPlan, type ApplyOptions, type ApplyReport } from './apply.ts';
import { parseRobotKeyFile } from '../../agent/site-key.ts';
import { parseInventory, type Inventory } from './inventory.ts';
import {
  renderBootstrapPlan,
  renderKeyPlan,
  renderRemovePlan,
  sha256Hex,
  type BootstrapPlan,
  type BundleInfo,
} from './plan.ts';
import type { ProgressEvent } from './progress.ts';
import { InMemoryStateStore } from './site-dir.ts';
import { RobotTwin } from './testing/robot-twin.ts';

const dir = mkdtempSync(join(tmpdir(), 'edgectl-apply-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const agentFile = join(dir, 'edgectl-agent.mjs');
const nodeFile = join(dir, 'node');
writeFileSync(agentFile, 'import"./edgectl-agent-A1.mjs";const r=()=>import("./edgectl-agent-A2.mjs");\n');
writeFileSync(join(dir, 'edgectl-agent-A1.mjs'), 'export const a1 = 1;\n');
writeFileSync(join(dir, 'edgectl-agent-A2.mjs'), 'export const a2 = 2;\n');
writeFileSync(nodeFile, Buffer.alloc(4096, 1));
const file = (p: string) => ({
  localPath: p,
  sha256: sha256Hex(readFileSync(p)),
  bytes: readFileSync(p).length,
});
const bundle: BundleInfo = {
  agent: { ...file(agentFile), chunks: ['A1', 'A2'].map((c) => file(join(dir, `edgectl-agent-${c}.mjs`))) },
  node: { ...file(nodeFile), arch: 'x86_64' },
};
const unitTemplate = readFileSync(
  fileURLToPath(new URL('../../templates/edgectl-agent.service', import.meta.url)),
  'utf8',
);
const identity = { siteKeyHex: '7a'.repeat(32) };

function inventory(over: Record<string, unknown> = {}): Inventory {
  return parseInventory({
    site: { id: 'lab' },
    robots: ['r1', 'r2', 'r3'].map((name, i) => ({
      name,
      address: `10.77.30.${i + 1}`,
      ssh: { user: 'edgectl', keyFile: 'id' },
      serverCapable: true,
    })),
    ...over,
  });
}
const bootstrapPlan = (inv = inventory()) =>
  renderBootstrapPlan({ inventory: inv, bundle, identity, unitTemplate });

interface Site {
  twins: Map<string, RobotTwin>;
  state: InMemoryStateStore;
  events: ProgressEvent[];
  apply(plan: BootstrapPlan, over?: Partial<ApplyOptions>): Promise<ApplyReport>;
}

function site(twins = ['r1', 'r2', 'r3'].map((n) => new RobotTwin(n))): Site {
  const s: Site = {
    twins: new Map(twins.map((t) => [t.target, t])),
    state: new InMemoryStateStore(),
    events: [],
    apply: (plan, over = {}) =>
      applyPlan({
        plan,
        connect: async (r) => s.twins.get(r.target)!.reopen(),
        state: s.state,
        parallel: 3,
        emit: (e) => s.events.push(e),
        resumeCommand: 'edgectl bootstrap site -f site.yaml',
        sshCommand: (r) => `ssh -p 22 edgectl@${r.address}`,
        now: () => 0,
        ...over,
      }),
  };
  return s;
}

test('a fresh bootstrap installs every robot: files with their modes, the unit enabled and running', async () => {
  const s = site();
  const report = await s.apply(bootstrapPlan());
  assert.deepEqual(
    report.robots.map((r) => [r.robot, r.ok]),
    [
      ['r1', true],
      ['r2', true],
      ['r3', true],
    ],
  );
  const r1 = s.twins.get('r1')!;
  assert.deepEqual(
    { ...r1.files.get('/etc/edgectl/site-keys.json'), content: undefined },
    { content: undefined, mode: 0o600, owner: 'root:root' },
  );
  // Its own keys, derived from the master secret, which stays on the bootstrap machine.
  const keys = parseRobotKeyFile(r1.files.get('/etc/edgectl/site-keys.json')!.content.toString(), 'r1');
  assert.equal(keys.node, 'r1');
  assert.ok(!JSON.stringify(keys).includes(identity.siteKeyHex));
  assert.equal(r1.files.get('/opt/edgectl/node/bin/node')!.mode, 0o755);
  for (const f of ['edgectl-agent.mjs', 'edgectl-agent-A1.mjs', 'edgectl-agent-A2.mjs'])
    assert.deepEqual(
      r1.files.get(`/opt/edgectl/${f}`)?.content,
      readFileSync(join(dir, f)),
      `${f} is installed beside the entry`,
    );
  assert.equal(r1.dirs.get('/etc/edgectl')!.mode, 0o700);
  assert.ok(r1.enabled.has('edgectl-agent.service') && r1.active.has('edgectl-agent.service'));
  assert.deepEqual(r1.systemctl, [
    'daemon-reload',
    'restart edgectl-agent.service',
    'enable --now edgectl-agent.service',
  ]);
  // No secret is ever in a recorded argv.
  assert.ok(!JSON.stringify(r1.calls).includes(identity.siteKeyHex));
});

test('a second run is a no-op: nothing is run on any robot', async () => {
  const s = site();
  const plan = bootstrapPlan();
  await s.apply(plan);
  const before = [...s.twins.values()].map((t) => t.calls.length);
  const report = await s.apply(plan);
  assert.deepEqual(
    [...s.twins.values()].map((t) => t.calls.length),
    before,
  );
  for (const r of report.robots) {
    assert.equal(r.outcomes.changed, 0);
    assert.equal(r.outcomes['done-before'] + r.outcomes['not-needed'], plan.robots[0]!.steps.length);
  }
});

test('a second run with recheck checks every step on the robot and still changes nothing', async () => {
  const s = site();
  const plan = bootstrapPlan();
  await s.apply(plan);
  const snapshots = [...s.twins.values()].map((t) => t.snapshot());
  const before = [...s.twins.values()].map((t) => t.calls.length);
  const report = await s.apply(plan, { recheck: true, state: new InMemoryStateStore() });
  assert.ok(
    report.robots.every((r) => r.ok && r.outcomes.changed === 0),
    JSON.stringify(report.robots),
  );
  assert.deepEqual(
    [...s.twins.values()].map((t) => t.snapshot()),
    snapshots,
  );
  for (const [i, t] of [...s.twins.values()].entries()) {
    assert.ok(t.calls.length > before[i]!, 'the robot was checked');
    assert.ok(!t.calls.slice(before[i]).some((c) => c.op === 'writeFile' || c.op === 'upload'));
    assert.equal(t.systemctl.filter((c) => c.startsWith('restart')).length, 1);
  }
});

test('a run interrupted after any operation resumes where it stopped and ends like an uninterrupted one', async () => {
  const reference = site([new RobotTwin('r1')]);
  const plan = bootstrapPlan(
    inventory({
      robots: [
        { name: 'r1', address: '10.77.30.1', ssh: { user: 'edgectl', keyFile: 'id' }, serverCapable: true },
      ],
    }),
  );
  await reference.apply(plan);
  const want = reference.twins.get('r1')!.snapshot();
  const ops = reference.twins.get('r1')!.calls.length;
  for (let k = 0; k < ops; k++) {
    const s = site([new RobotTwin('r1')]);
    const twin = s.twins.get('r1')!;
    const first = await s.apply(plan, {
      connect: async () => {
        twin.reopen().disconnectAfter(k);
        return twin;
      },
    });
    assert.equal(first.robots[0]!.ok, false, `k=${k}`);
    assert.equal(first.robots[0]!.failure?.code, 'EDGE_SSH_DISCONNECTED');
    const stoppedAt = first.robots[0]!.failure!.step;
    s.events.length = 0;
    const second = await s.apply(plan, {
      connect: async () => {
        twin.reopen().reconnect();
        return twin;
      },
    });
    assert.ok(second.robots[0]!.ok, `k=${k}: ${JSON.stringify(second.robots[0]!.failure)}`);
    assert.deepEqual(twin.snapshot(), want, `k=${k}`);
    // Nothing before the failed step is redone, except the reloads and restarts its changes still owe.
    const steps = plan.robots[0]!.steps;
    const stop = steps.findIndex((x) => x.id === stoppedAt);
    const redone = s.events.flatMap((e) => (e.type === 'step.start' ? [e.step] : []));
    for (const id of redone) {
      const i = steps.findIndex((x) => x.id === id);
      assert.ok(i >= stop || steps[i]!.onlyIfChanged, `k=${k}: ${id} was redone before ${stoppedAt}`);
    }
    assert.ok(redone.includes(stoppedAt) || steps[stop]!.onlyIfChanged, `k=${k}`);
  }
});

test('a connection lost at the restart still restarts the agent when the run resumes', async () => {
  const s = site([new RobotTwin('r1')]);
  const twin = s.twins.get('r1')!;
  const plan = bootstrapPlan(
    inventory({
      robots: [
        { name: 'r1', address: '10.77.30.1', ssh: { user: 'edgectl', keyFile: 'id' }, serverCapable: true },
      ],
    }),
  );
  twin.dropAt = 'restart';
  const first = await s.apply(plan);
  assert.equal(first.robots[0]!.failure?.step, 'service.restart');
  assert.deepEqual(await s.state.load('r1').then((x) => x.pendingChanged.includes('config.agent')), true);
  await s.apply(plan);
  assert.ok(twin.systemctl.includes('restart edgectl-agent.service'));
  assert.deepEqual((await s.state.load('r1')).pendingChanged, []);
});

test('one failing robot is reported with step, stderr and recovery commands; the others finish', async () => {
  const twins = [
    new RobotTwin('r1'),
    new RobotTwin('r2', {
      failPreflight: { match: /MemTotal/, stderr: 'the robot has 100 KiB of memory, 1843200 KiB needed\n' },
    }),
    new RobotTwin('r3'),
  ];
  const s = site(twins);
  const report = await s.apply(bootstrapPlan());
  const r2 = report.robots.find((r) => r.robot === 'r2')!;
  assert.equal(r2.ok, false);
  assert.equal(r2.failure?.step, 'preflight.memory');
  assert.match(r2.failure!.stderr, /100 KiB of memory/);
  assert.match(r2.failure!.hint ?? '', /serverCapable: false/);
  assert.match(r2.failure!.recover[0]!, /^ssh -p 22 edgectl@10\.77\.30\.2 'sudo sh -c /);
  assert.equal(
    r2.failure!.recover.at(-1),
    'edgectl bootstrap site -f site.yaml   # resumes at preflight.memory',
  );
  assert.ok(report.robots.filter((r) => r.robot !== 'r2').every((r) => r.ok));
  assert.equal(twins[1]!.files.size, 0, 'nothing was installed on the failed robot');
  assert.ok(twins[2]!.active.has('edgectl-agent.service'));
});

test('a robot that cannot be reached fails alone, at connect', async () => {
  const s = site();
  const report = await s.apply(bootstrapPlan(), {
    connect: async (r) => {
      if (r.target === 'r3') throw Object.assign(new Error('connect ECONNREFUSED'), {});
      return s.twins.get(r.target)!.reopen();
    },
  });
  assert.deepEqual(
    report.robots.map((r) => [r.robot, r.ok, r.failure?.step]),
    [
      ['r1', true, undefined],
      ['r2', true, undefined],
      ['r3', false, 'connect'],
    ],
  );
});

test('no more than `parallel` robots are worked on at once', async () => {
  const names = ['r1', 'r2', 'r3', 'r4', 'r5'];
  const inv = inventory({
    robots: names.map((name, i) => ({
      name,
      address: `10.77.30.${i + 1}`,
      ssh: { user: 'edgectl', keyFile: 'id' },
      serverCapable: i < 3,
    })),
  });
  const s = site(names.map((n) => new RobotTwin(n)));
  let open = 0;
  let most = 0;
  await s.apply(bootstrapPlan(inv), {
    parallel: 2,
    connect: async (r) => {
      open++;
      most = Math.max(most, open);
      const t = s.twins.get(r.target)!.reopen();
      const close = t.close.bind(t);
      t.close = async () => {
        open--;
        await close();
      };
      return t;
    },
  });
  assert.equal(most, 2);
});

test('a changed inventory redoes only what it changes, and restarts the agent', async () => {
  const s = site();
  await s.apply(bootstrapPlan());
  const report = await s.apply(bootstrapPlan(inventory({ log: { level: 'debug' } })));
  for (const r of report.robots) assert.equal(r.outcomes.changed, 2, JSON.stringify(r)); // config + restart
  const r1 = s.twins.get('r1')!;
  assert.match(r1.files.get('/etc/edgectl/agent.yaml')!.content.toString(), /level: debug/);
  assert.equal(r1.systemctl.filter((c) => c.startsWith('restart')).length, 2);
});

test('reset removes what bootstrap installed, and a later bootstrap installs it again', async () => {
  const s = site();
  const inv = inventory();
  await s.apply(bootstrapPlan(inv));
  const r1 = s.twins.get('r1')!;
  const report = await s.apply(renderRemovePlan('reset', { inventory: inv, bundle, robots: ['r1'] }));
  assert.ok(report.robots[0]!.ok);
  assert.deepEqual([...r1.files.keys()], []);
  assert.ok(![...r1.dirs.keys()].some((d) => /edgectl/.test(d)), [...r1.dirs.keys()].join(' '));
  assert.ok(!r1.enabled.has('edgectl-agent.service') && !r1.active.has('edgectl-agent.service'));
  assert.deepEqual(await s.state.load('r1'), { done: {}, pendingChanged: [] });
  // A second reset finds nothing to do.
  const again = await s.apply(renderRemovePlan('reset', { inventory: inv, bundle, robots: ['r1'] }));
  assert.equal(again.robots[0]!.outcomes.changed, 0);
  const re = await s.apply(bootstrapPlan(inv));
  assert.ok(re.robots.find((r) => r.robot === 'r1')!.outcomes.changed > 0);
  assert.ok(r1.active.has('edgectl-agent.service'));
});

test('an upgrade uploads the new chunks before the entry and removes the old ones after the restart; a downgrade brings them back', async () => {
  const s = site([new RobotTwin('r1')]);
  const inv = inventory({
    robots: [
      { name: 'r1', address: '10.77.30.1', ssh: { user: 'edgectl', keyFile: 'id' }, serverCapable: true },
    ],
  });
  const r1 = s.twins.get('r1')!;
  const agentFiles = () =>
    [...r1.files.keys()].filter((f) => /^\/opt\/edgectl\/edgectl-agent/.test(f)).sort();
  await s.apply(bootstrapPlan(inv));
  // The next build: A2 is unchanged, A1 became B1.
  const next = join(dir, 'next');
  mkdirSync(next, { recursive: true });
  writeFileSync(
    join(next, 'edgectl-agent.mjs'),
    'import"./edgectl-agent-B1.mjs";import("./edgectl-agent-A2.mjs");\n',
  );
  writeFileSync(join(next, 'edgectl-agent-B1.mjs'), 'export const b1 = 1;\n');
  writeFileSync(join(next, 'edgectl-agent-A2.mjs'), 'export const a2 = 2;\n');
  const upgrade: BundleInfo = {
    ...bundle,
    agent: {
      ...file(join(next, 'edgectl-agent.mjs')),
      chunks: ['A2', 'B1'].map((c) => file(join(next, `edgectl-agent-${c}.mjs`))),
    },
  };
  const before = r1.calls.length;
  await s.apply(renderBootstrapPlan({ inventory: inv, bundle: upgrade, identity, unitTemplate }));
  const order = r1.calls.slice(before).flatMap((c) => {
    if (c.op === 'upload') return [c.path.slice(c.path.lastIndexOf('/') + 1)];
    if (c.op === 'run' && c.argv[0] === 'systemctl' && c.argv[1] === 'restart') return ['restart'];
    if (c.op === 'run' && c.argv[3] === 'edgectl-prune-chunks' && c.argv[4] === 'remove') return ['prune'];
    return [];
  });
  assert.deepEqual(order, ['edgectl-agent-B1.mjs', 'edgectl-agent.mjs', 'restart', 'prune']);
  assert.deepEqual(agentFiles(), [
    '/opt/edgectl/edgectl-agent-A2.mjs',
    '/opt/edgectl/edgectl-agent-B1.mjs',
    '/opt/edgectl/edgectl-agent.mjs',
  ]);
  // Back to the first build: its pruned chunk A1 is uploaded again, though a run once recorded it.
  await s.apply(bootstrapPlan(inv));
  assert.deepEqual(agentFiles(), [
    '/opt/edgectl/edgectl-agent-A1.mjs',
    '/opt/edgectl/edgectl-agent-A2.mjs',
    '/opt/edgectl/edgectl-agent.mjs',
  ]);
  assert.deepEqual(r1.files.get('/opt/edgectl/edgectl-agent.mjs')!.content, readFileSync(agentFile));
});

test('a key plan reloads the agents whose keys changed, shares the bootstrap record, and keeps the restarts an interrupted bootstrap owes', async () => {
  const s = site();
  await s.apply(bootstrapPlan());
  // An interrupted bootstrap left r1 owing a restart for its new config.
  const r1 = await s.state.load('r1');
  await s.state.save('r1', { ...r1, pendingChanged: ['config.agent'] });
  const rotated = { ...identity, keys: { send: 1, accept: [1, 2], refused: [] } };
  const report = await s.apply(renderKeyPlan({ inventory: inventory(), identity: rotated }));
  assert.ok(
    report.robots.every((r) => r.ok && r.outcomes.changed === 3),
    JSON.stringify(report.robots),
  );
  for (const t of s.twins.values())
    assert.equal(t.systemctl.at(-1), 'kill --signal=HUP --kill-whom=main edgectl-agent.service', t.target);
  assert.deepEqual((await s.state.load('r1')).pendingChanged, ['config.agent']);
  // The bootstrap record now holds the new key file: a bootstrap with the same keys skips it.
  const again = await s.apply(
    renderBootstrapPlan({ inventory: inventory(), bundle, identity: rotated, unitTemplate }),
  );
  const r2 = again.robots.find((r) => r.robot === 'r2')!;
  assert.equal(r2.outcomes.changed, 0, JSON.stringify(r2));
});
