import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { validateAgentConfig } from '../../agent/config.ts';
import {
  memberKey,
  operatorKey,
  pairKey,
  parseRobotKeyFile,
  voterDeriveKey,
  type RobotKeyFile,
} from '../../agent/site-key.ts';
import { assertGolden } from '../../agent/site/golden.ts';
import { readInventoryFile } from './inventory-files.ts';
import { parseInventory } from './inventory.ts';
import { formatPlanSummary, formatPlanText, planArtifact, selectRobot } from './plan-output.ts';
import {
  k3sInstaller,
  k3sNodeSpec,
  labRuntimeInstaller,
  renderBootstrapPlan,
  renderKeyPlan,
  renderRemovePlan,
  stepHash,
  type BundleInfo,
} from './plan.ts';
import { generateSiteIdentity, issueEtcdMemberCertificates, readSiteIdentity } from './identity-files.ts';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const golden = (name: string) => here(`./testdata/${name}`);
const inventory = readInventoryFile(here('../../templates/inventory/site.example.yaml'));
const unitTemplate = readFileSync(here('../../templates/edgectl-agent.service'), 'utf8');
export const TEST_BUNDLE: BundleInfo = {
  agent: {
    localPath: '/build/agent/bundle/edgectl-agent.mjs',
    sha256: 'a1'.repeat(32),
    bytes: 289_222,
    chunks: [
      {
        localPath: '/build/agent/bundle/edgectl-agent-3F2EO6OI.mjs',
        sha256: 'a2'.repeat(32),
        bytes: 1_420_261,
      },
      {
        localPath: '/build/agent/bundle/edgectl-agent-4AJKFZTD.mjs',
        sha256: 'a3'.repeat(32),
        bytes: 456_246,
      },
      // The config loader, which the agent runs in a child process (agent/config-subprocess.ts).
      {
        localPath: '/build/agent/bundle/edgectl-agent-config.cjs',
        sha256: 'a4'.repeat(32),
        bytes: 577_919,
      },
    ],
  },
  node: {
    localPath: '/build/node_modules/node/bin/node',
    sha256: 'b2'.repeat(32),
    bytes: 126_595_440,
    arch: 'x86_64',
  },
};
export const TEST_IDENTITY = { siteKeyHex: '5e'.repeat(32) };

const plan = renderBootstrapPlan({ inventory, bundle: TEST_BUNDLE, identity: TEST_IDENTITY, unitTemplate });

test('golden: the bootstrap plan of the example inventory, as text and as the JSON artifact', () => {
  assertGolden(golden('bootstrap-plan.golden.txt'), `${formatPlanText(plan)}\n`);
  assertGolden(golden('bootstrap-plan.golden.json'), `${JSON.stringify(planArtifact(plan), null, 2)}\n`);
});

test('golden: the rendered agent config and systemd unit of spot-1', () => {
  const steps = plan.robots[0]!.steps;
  const config = steps.find((s) => s.id === 'config.agent');
  const unit = steps.find((s) => s.id === 'service.unit');
  assert.ok(config?.kind === 'writeFile' && unit?.kind === 'writeFile');
  assertGolden(golden('agent.spot-1.golden.yaml'), config.content);
  assertGolden(golden('edgectl-agent.service.golden'), unit.content);
});

test("the robots' keys appear in no printed plan: only as a digest", () => {
  const text = formatPlanText(plan) + JSON.stringify(planArtifact(plan));
  assert.ok(!text.includes(TEST_IDENTITY.siteKeyHex));
  for (const r of plan.robots) {
    const key = r.steps.find((s) => s.id === 'secret.site-keys');
    assert.ok(key?.kind === 'writeFile' && key.mode === 0o600 && key.owner === 'root:root' && key.secret);
    for (const k of key.content.match(/[0-9a-f]{64}/g) ?? []) assert.ok(!text.includes(k), r.target);
  }
  assert.match(text, /secret: content not shown/);
});

test('no robot gets the master secret; a worker gets its own key only, a voter its pairs, V and the operator key', () => {
  const master = Buffer.from(TEST_IDENTITY.siteKeyHex, 'hex');
  const files = new Map(
    plan.robots.map((r) => {
      const step = r.steps.find((s) => s.id === 'secret.site-keys');
      assert.ok(step?.kind === 'writeFile');
      return [r.target, parseRobotKeyFile(step.content, r.target)] as const;
    }),
  );
  const hexes = (f: RobotKeyFile): string[] => JSON.stringify(f).match(/[0-9a-f]{64}/g) ?? [];
  for (const [name, f] of files) {
    assert.ok(!JSON.stringify(f).includes(TEST_IDENTITY.siteKeyHex), `${name} holds the master secret`);
    assert.equal(f.node, name);
  }
  const worker = files.get('vac-1')!;
  assert.equal(worker.role, 'worker');
  assert.deepEqual(hexes(worker), [
    Buffer.from(memberKey(voterDeriveKey(master, 1), 'vac-1', 1)).toString('hex'),
  ]);
  // Nothing a worker holds is a voter's: no pair key, no V, no operator key.
  const voterSecrets = ['spot-1', 'spot-2', 'amr-1'].flatMap((v) => hexes(files.get(v)!));
  for (const k of hexes(worker)) assert.ok(!voterSecrets.includes(k));
  const spot1 = files.get('spot-1')!;
  assert.ok(spot1.role === 'voter');
  assert.deepEqual(Object.keys(spot1.generations[0]!.pairs).sort(), ['amr-1', 'spot-2']);
  assert.equal(
    spot1.generations[0]!.pairs['spot-2'],
    Buffer.from(pairKey(master, 'spot-1', 'spot-2', 1)).toString('hex'),
  );
  assert.equal(spot1.generations[0]!.operator, Buffer.from(operatorKey(master, 1)).toString('hex'));
  // A voter's pair keys are not another pair's: spot-1 cannot speak as spot-2 to amr-1.
  assert.ok(!hexes(spot1).includes(Buffer.from(pairKey(master, 'spot-2', 'amr-1', 1)).toString('hex')));
});

test("every robot's agent.yaml is one the agent accepts, for that robot", () => {
  for (const r of plan.robots) {
    const step = r.steps.find((s) => s.id === 'config.agent');
    assert.ok(step?.kind === 'writeFile');
    const c = validateAgentConfig(parse(step.content), r.target);
    assert.equal(c.node.id, r.target);
    assert.deepEqual(c.voters, ['spot-1', 'spot-2', 'amr-1']);
  }
});

test('preflight comes first, the service last, then the prune; the restart depends on every file the agent reads', () => {
  const ids = plan.robots[0]!.steps.map((s) => s.id);
  assert.equal(ids[0], 'preflight.sudo');
  assert.deepEqual(ids.slice(-5), [
    'service.unit',
    'service.daemon-reload',
    'service.restart',
    'service.enable',
    'bundle.prune',
  ]);
  const restart = plan.robots[0]!.steps.find((s) => s.id === 'service.restart');
  assert.deepEqual(restart?.onlyIfChanged, [
    'bundle.agent-chunk-1',
    'bundle.agent-chunk-2',
    'bundle.agent-chunk-3',
    'bundle.agent',
    'bundle.node',
    'config.agent',
    'config.site',
    'secret.site-keys',
    'secret.legacy-site-key',
    'service.unit',
  ]);
});

test('the plan is deterministic, and a changed input changes exactly the steps it feeds', () => {
  const again = renderBootstrapPlan({
    inventory,
    bundle: TEST_BUNDLE,
    identity: TEST_IDENTITY,
    unitTemplate,
  });
  assert.deepEqual(again, plan);
  const newAgent = renderBootstrapPlan({
    inventory,
    bundle: { ...TEST_BUNDLE, agent: { ...TEST_BUNDLE.agent, sha256: 'c3'.repeat(32) } },
    identity: TEST_IDENTITY,
    unitTemplate,
  });
  const changed = newAgent.robots[0]!.steps.filter(
    (s, i) => stepHash(s) !== stepHash(plan.robots[0]!.steps[i]!),
  );
  assert.deepEqual(
    changed.map((s) => s.id),
    ['bundle.agent'],
  );
  // A new build: a chunk with a new name (and the entry that imports it). The prune keeps the new one.
  const chunk = {
    localPath: '/build/agent/bundle/edgectl-agent-NEWCHUNK.mjs',
    sha256: 'c4'.repeat(32),
    bytes: TEST_BUNDLE.agent.chunks[1]!.bytes,
  };
  const newChunk = renderBootstrapPlan({
    inventory,
    bundle: {
      ...TEST_BUNDLE,
      agent: {
        ...TEST_BUNDLE.agent,
        chunks: [TEST_BUNDLE.agent.chunks[0]!, chunk, TEST_BUNDLE.agent.chunks[2]!],
      },
    },
    identity: TEST_IDENTITY,
    unitTemplate,
  });
  assert.deepEqual(
    newChunk.robots[0]!.steps.filter((s, i) => stepHash(s) !== stepHash(plan.robots[0]!.steps[i]!)).map(
      (s) => s.id,
    ),
    ['bundle.agent-chunk-2', 'bundle.prune'],
  );
});

test("the agent's chunks are uploaded beside its entry file, every one before it", () => {
  for (const r of plan.robots) {
    const uploads = r.steps.flatMap((s) => (s.kind === 'upload' ? [[s.id, s.path, s.mode, s.sha256]] : []));
    assert.deepEqual(uploads.slice(0, 4), [
      ['bundle.agent-chunk-1', '/opt/edgectl/edgectl-agent-3F2EO6OI.mjs', 0o644, 'a2'.repeat(32)],
      ['bundle.agent-chunk-2', '/opt/edgectl/edgectl-agent-4AJKFZTD.mjs', 0o644, 'a3'.repeat(32)],
      ['bundle.agent-chunk-3', '/opt/edgectl/edgectl-agent-config.cjs', 0o644, 'a4'.repeat(32)],
      ['bundle.agent', '/opt/edgectl/edgectl-agent.mjs', 0o644, 'a1'.repeat(32)],
    ]);
  }
  // The disk check counts the chunks.
  const disk = plan.robots[0]!.steps.find((s) => s.id === 'preflight.disk');
  assert.ok(disk?.kind === 'run');
  const bytes = [TEST_BUNDLE.agent, ...TEST_BUNDLE.agent.chunks, TEST_BUNDLE.node].reduce(
    (n, f) => n + f.bytes,
    0,
  );
  assert.equal(disk.argv.at(-1), String(Math.ceil(bytes / 1024) + 200 * 1024));
});

test('bundle.prune removes the agent chunks the entry does not import, and nothing else (run by sh)', () => {
  const prune = plan.robots[0]!.steps.find((s) => s.id === 'bundle.prune');
  assert.ok(prune?.kind === 'run' && prune.unless && prune.sudo);
  assert.equal(prune.argv[5], '/opt/edgectl');
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-prune-'));
  try {
    const keep = ['edgectl-agent-3F2EO6OI.mjs', 'edgectl-agent-4AJKFZTD.mjs'];
    // The config loader's name is not a content hash: each build overwrites it, the prune leaves it.
    const others = [
      'edgectl-agent.mjs',
      'edgectl-agent.mjs.map',
      'other.mjs',
      'edgectl-agent-X.js',
      'edgectl-agent-config.cjs',
    ];
    for (const f of [...keep, ...others, 'edgectl-agent-OLD1.mjs', 'edgectl-agent-OLD 2.mjs'])
      writeFileSync(join(dir, f), '');
    mkdirSync(join(dir, 'node'));
    const sh = (argv: readonly string[]) =>
      spawnSync(argv[0]!, [...argv.slice(1, 5), dir, ...argv.slice(6)], { encoding: 'utf8' });
    assert.equal(sh(prune.unless).status, 1, 'the check sees the stale chunks');
    assert.equal(sh(prune.argv).status, 0);
    assert.deepEqual(readdirSync(dir).sort(), [...keep, ...others, 'node'].sort());
    assert.equal(sh(prune.unless).status, 0, 'nothing is left to prune');
    assert.equal(sh(prune.argv).status, 0, 'a second prune is a no-op');
    // A single-file agent imports no chunk: every chunk goes, the entry stays.
    const single = renderBootstrapPlan({
      inventory,
      bundle: { ...TEST_BUNDLE, agent: { ...TEST_BUNDLE.agent, chunks: [] } },
      identity: TEST_IDENTITY,
      unitTemplate,
    }).robots[0]!.steps.find((s) => s.id === 'bundle.prune');
    assert.ok(single?.kind === 'run');
    assert.equal(sh(single.argv).status, 0);
    assert.deepEqual(readdirSync(dir).sort(), [...others, 'node'].sort());
    assert.ok(existsSync(join(dir, 'edgectl-agent.mjs')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the lab: per-robot install roots, the lab runtime, no systemd', () => {
  const lab = parseInventory({
    site: { id: 'lab' },
    robots: ['r1', 'r2'].map((name, i) => ({
      name,
      address: `10.77.30.${i + 1}`,
      ssh: { user: 'root', keyFile: 'id' },
      sudo: 'none',
      serverCapable: true,
      wifiInterface: 'eth0',
    })),
    profile: 'lab',
    controlPlane: { runtime: 'lab', identityDir: '/var/lib/edgectl/lab/lab/identity' },
    install: { root: '/srv/lab/{robot}', service: 'none' },
  });
  const p = renderBootstrapPlan({
    inventory: lab,
    bundle: TEST_BUNDLE,
    identity: TEST_IDENTITY,
    unitTemplate,
  });
  const r2 = p.robots[1]!;
  assert.ok(!r2.steps.some((s) => s.phase === 'service' || s.id === 'preflight.systemd'));
  const paths = r2.steps.flatMap((s) => ('path' in s ? [s.path] : []));
  assert.ok(paths.length > 0 && paths.every((x) => x.startsWith('/srv/lab/r2/')), paths.join(' '));
  const prune = r2.steps.find((s) => s.id === 'bundle.prune');
  assert.ok(prune?.kind === 'run' && prune.argv[5] === '/srv/lab/r2/opt/edgectl');
  const config = r2.steps.find((s) => s.id === 'config.agent');
  assert.ok(config?.kind === 'writeFile');
  const c = validateAgentConfig(parse(config.content));
  assert.equal(c.controlPlane.runtime, 'lab');
  assert.equal(c.siteKeyFile, '/srv/lab/r2/etc/edgectl/site-keys.json');
  // The lab runtime reads the lab's identity and the installed site spec; the host polls its status.
  assert.deepEqual(c.controlPlane, {
    runtime: 'lab',
    identityDir: '/var/lib/edgectl/lab/lab/identity',
    address: '10.77.30.2',
    siteSpecFile: '/srv/lab/r2/etc/edgectl/site.yaml',
    templatesDir: '/srv/lab/r2/opt/edgectl/templates',
  });
  assert.equal(c.status.listen, '10.77.30.2:7947');
  assert.ok(
    r2.steps.some((s) => s.id === 'config.site' && s.kind === 'writeFile' && /id: lab/.test(s.content)),
  );
});

test('a bundle with k3s and air-gap images uploads them (k3s runtime)', () => {
  const p = renderBootstrapPlan({
    inventory,
    bundle: {
      ...TEST_BUNDLE,
      k3s: { localPath: '/dl/k3s', sha256: 'd4'.repeat(32), bytes: 70e6 },
      airgapImages: {
        localPath: '/dl/k3s-airgap-images-amd64.tar.zst',
        sha256: 'e5'.repeat(32),
        bytes: 200e6,
      },
    },
    identity: TEST_IDENTITY,
    unitTemplate,
  });
  const ids = p.robots[0]!.steps.map((s) => s.id);
  for (const id of ['k3s.binary', 'k3s.images-dir', 'k3s.airgap-images']) assert.ok(ids.includes(id), id);
  const restart = p.robots[0]!.steps.find((s) => s.id === 'service.restart');
  assert.ok(restart?.onlyIfChanged?.includes('k3s.binary'));
});

test('golden: reset of one robot and uninstall of the site', () => {
  const reset = renderRemovePlan('reset', { inventory, bundle: TEST_BUNDLE, robots: ['vac-1'] });
  assert.deepEqual(
    reset.robots.map((r) => r.target),
    ['vac-1'],
  );
  assertGolden(golden('reset-plan.golden.txt'), `${formatPlanText(reset)}\n`);
  const uninstall = renderRemovePlan('uninstall', { inventory, bundle: TEST_BUNDLE });
  assert.equal(uninstall.robots.length, 4);
  assert.deepEqual(
    uninstall.robots[0]!.steps.map((s) => s.id),
    [
      'service.disable',
      'service.unit',
      'service.daemon-reload',
      'remove.config',
      'remove.state',
      'remove.bundle',
    ],
  );
});

/** A k3s site identity with the voters' etcd certificates issued, as a real bootstrap makes it. */
async function k3sIdentity(dir: string) {
  await generateSiteIdentity(dir, { site: 'dock-a', now: 1_800_000_000_000 });
  const voters = inventory.robots
    .filter((r) => r.serverCapable)
    .map((r) => ({ name: r.name, ip: k3sNodeSpec(inventory, r).nodeIp }));
  assert.deepEqual((await issueEtcdMemberCertificates(dir, voters)).sort(), voters.map((v) => v.name).sort());
  assert.deepEqual(await issueEtcdMemberCertificates(dir, voters), [], 'issued once per address');
  return readSiteIdentity(dir);
}

test('the k3s installer gives server-capable robots the CAs and both tokens, workers only the agent token', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-id-'));
  try {
    const k3s = await k3sIdentity(join(dir, 'id'));
    const p = renderBootstrapPlan({
      inventory,
      bundle: {
        ...TEST_BUNDLE,
        k3s: { localPath: '/build/k3s', sha256: 'c3'.repeat(32), bytes: 70_000_000 },
      },
      identity: { ...TEST_IDENTITY, k3s },
      unitTemplate,
      runtimes: { lab: labRuntimeInstaller, k3s: k3sInstaller('#!/bin/sh\n# reap\n') },
    });
    const secretsOf = (robot: string) =>
      p.robots
        .find((r) => r.target === robot)!
        .steps.filter((s) => s.id.startsWith('k3s.identity-') && s.kind === 'writeFile')
        .map((s) => (s.kind === 'writeFile' ? s.path : ''));
    const server = secretsOf('spot-1');
    assert.ok(server.includes('/var/lib/rancher/k3s/server/tls/server-ca.key'), server.join(' '));
    assert.ok(
      server.some((x) => x.endsWith('/server-token')) && server.some((x) => x.endsWith('/agent-token')),
    );
    const worker = secretsOf('vac-1');
    assert.deepEqual(
      worker.map((x) => x.split('/').pop()),
      ['agent-token', 'password'],
      'a worker gets the agent token and its node password, nothing of the CA, no etcd credential',
    );
    for (const f of [
      '/etc/edgectl/etcd-peer/peer.crt',
      '/etc/edgectl/etcd-peer/peer.key',
      '/etc/edgectl/etcd-peer/peer-ca.crt',
      '/etc/edgectl/etcd-client/client.crt',
      '/etc/edgectl/etcd-client/server.key',
      '/etc/edgectl/etcd-client/ca.crt',
    ])
      assert.ok(server.includes(f), `a voter gets ${f}`);
    for (const r of p.robots)
      for (const s of r.steps)
        if (s.id.startsWith('k3s.identity-') && s.kind === 'writeFile') {
          assert.equal(s.mode, 0o600);
          assert.equal(s.secret, true);
        }
    // Nothing secret is printed: not the tokens, not a CA key.
    const text = formatPlanText(p) + JSON.stringify(planArtifact(p));
    for (const [path, content] of k3s.files)
      if (/token|\.key$/.test(path)) assert.ok(!text.includes(content.trim()), `${path} leaks into the plan`);
    const steps = p.robots.find((r) => r.target === 'spot-1')!.steps.map((s) => s.id);
    for (const id of ['k3s.binary', 'k3s.unit-server', 'k3s.unit-agent', 'k3s.fence'])
      assert.ok(steps.includes(id), `${id} is in the k3s install`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reset and uninstall with the k3s installer remove every file the k3s install and the identity wrote', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-rm-'));
  try {
    const k3s = await k3sIdentity(join(dir, 'id'));
    const runtimes = { lab: labRuntimeInstaller, k3s: k3sInstaller('#!/bin/sh\n# reap\n') };
    const bundle = {
      ...TEST_BUNDLE,
      k3s: { localPath: '/build/k3s', sha256: 'c3'.repeat(32), bytes: 70_000_000 },
    };
    const install = renderBootstrapPlan({
      inventory,
      bundle,
      identity: { ...TEST_IDENTITY, k3s },
      unitTemplate,
      runtimes,
    });
    const reset = renderRemovePlan('reset', { inventory, bundle, robots: ['spot-1'], runtimes });
    const steps = reset.robots[0]!.steps;
    const removed = steps.flatMap((s) => (s.kind === 'remove' ? [s.path] : []));
    const written = install.robots
      .find((r) => r.target === 'spot-1')!
      .steps.flatMap((s) => (s.kind === 'writeFile' || s.kind === 'upload' ? [s.path] : []));
    assert.ok(written.length > 10, written.join(' '));
    for (const path of written)
      assert.ok(
        removed.some((r) => path === r || path.startsWith(`${r}/`)),
        `${path} is written by the install and removed by nothing`,
      );
    // k3s is stopped and its processes ended before any of its files go.
    const ids = steps.map((s) => s.id);
    assert.ok(ids.indexOf('k3s.killall') < ids.indexOf('k3s.data'));
    assert.ok(ids.indexOf('k3s.stop-server') < ids.indexOf('k3s.killall'));
    assert.equal(new Set(ids).size, ids.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('golden: the key plan of a rotation phase (send), and a removal that only the voters get', () => {
  const rotating = { ...TEST_IDENTITY, keys: { send: 2, accept: [2, 1], refused: [] } };
  const plan = renderKeyPlan({ inventory, identity: rotating });
  assertGolden(golden('keys-plan.golden.txt'), `${formatPlanText(plan)}\n`);
  for (const r of plan.robots) {
    const ids = r.steps.map((s) => s.id);
    assert.deepEqual(ids, ['secret.site-keys', 'service.reload-keys', 'service.keys-loaded'], r.target);
    // The same step bootstrap renders for the same keys: either records what the other installed.
    const fromBootstrap = renderBootstrapPlan({
      inventory,
      bundle: TEST_BUNDLE,
      identity: rotating,
      unitTemplate,
    })
      .robots.find((x) => x.target === r.target)!
      .steps.find((s) => s.id === 'secret.site-keys');
    assert.deepEqual(r.steps[0], fromBootstrap);
  }
  const refusing = { ...TEST_IDENTITY, keys: { send: 1, accept: [1], refused: ['vac-1'] } };
  const removal = renderKeyPlan({ inventory, identity: refusing, robots: ['spot-1', 'spot-2', 'amr-1'] });
  for (const r of removal.robots) {
    const step = r.steps[0]!;
    assert.ok(step.kind === 'writeFile');
    assert.deepEqual(parseRobotKeyFile(step.content, r.target).refused, ['vac-1']);
  }
});

test('uninstall without bundle.k3s leaves the k3s that was on the robot before, and removes what bootstrap put there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-pre-'));
  try {
    const k3s = await k3sIdentity(join(dir, 'id'));
    const runtimes = { lab: labRuntimeInstaller, k3s: k3sInstaller('#!/bin/sh\n# reap\n') };
    const bundle = { ...TEST_BUNDLE, k3s: undefined };
    const k3sInventory = {
      ...inventory,
      controlPlane: { ...inventory.controlPlane, runtime: 'k3s' as const },
    };
    const install = renderBootstrapPlan({
      inventory: k3sInventory,
      bundle,
      identity: { ...TEST_IDENTITY, k3s },
      unitTemplate,
      runtimes,
    });
    const uninstall = renderRemovePlan('uninstall', { inventory: k3sInventory, bundle, runtimes });
    for (const robot of uninstall.robots) {
      const removed = robot.steps.flatMap((s) => (s.kind === 'remove' ? [s.path] : []));
      const ids = robot.steps.map((s) => s.id);
      for (const kept of [
        '/usr/local/bin/k3s',
        '/var/lib/rancher/k3s',
        '/etc/rancher/k3s',
        '/var/lib/kubelet',
      ])
        assert.ok(!removed.includes(kept), `${robot.target}: ${kept} was not installed by bootstrap`);
      assert.ok(!removed.some((p) => p.startsWith('/etc/systemd/system/k3s')), 'the k3s units stay');
      assert.ok(!ids.includes('k3s.killall'), "the pre-installed k3s's containers are not ours to kill");
      assert.ok(ids.includes('k3s.stop-server'), 'the k3s the agent ran is stopped');
      const voter = k3sInventory.robots.find((r) => r.name === robot.target)!.serverCapable;
      const installed = install.robots.find((r) => r.target === robot.target)!.steps.map((s) => s.id);
      assert.equal(installed.includes('k3s.unit-etcd'), voter, 'a voter gets its etcd units, a worker none');
      assert.equal(ids.includes('k3s.stop-datastore'), voter);
      assert.ok(!removed.includes('/usr/local/bin/etcd'), 'an etcd bootstrap did not bring stays');
      const written = install.robots
        .find((r) => r.target === robot.target)!
        .steps.flatMap((s) => (s.kind === 'writeFile' || s.kind === 'upload' ? [s.path] : []));
      for (const path of written)
        assert.ok(
          removed.some((r) => path === r || path.startsWith(`${r}/`)),
          `${robot.target}: ${path} is written by the install and removed by nothing`,
        );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the storage preflight states one figure: the limit it checks', () => {
  const plan = renderBootstrapPlan({ inventory, bundle: TEST_BUNDLE, identity: TEST_IDENTITY, unitTemplate });
  for (const robot of plan.robots) {
    const step = robot.steps.find((s) => s.id === 'preflight.storage');
    if (!step || step.kind !== 'run') continue;
    const limit = step.argv.at(-1)!;
    assert.match(step.description, new RegExp(`under ${limit} ms`));
    const script = step.argv[2]!;
    assert.doesNotMatch(script, /(?<!\$)\b\d+ ms\b/, 'the script names no other figure than its $2');
    assert.match(script, /over the \$2 ms/);
  }
});

test('a site plan reads as one table of robots × phases; the counts add up to every step', () => {
  const plan = renderBootstrapPlan({ inventory, bundle: TEST_BUNDLE, identity: TEST_IDENTITY, unitTemplate });
  const text = formatPlanSummary(plan);
  const lines = text.split('\n');
  assert.ok(lines.length <= plan.robots.length + 4, `${lines.length} lines, not one per step`);
  const header = lines[2]!.split(/\s{2,}/);
  assert.deepEqual(header.slice(0, 2), ['robot', 'address']);
  assert.equal(header.at(-1), 'steps');
  for (const r of plan.robots) {
    const row = lines.find((l) => l.startsWith(`${r.target} `))!.split(/\s{2,}/);
    const counts = row.slice(2, -1).map((c) => (c === '-' ? 0 : Number(c)));
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      r.steps.length,
      r.target,
    );
    assert.equal(Number(row.at(-1)), r.steps.length);
  }
  const total = plan.robots.reduce((n, r) => n + r.steps.length, 0);
  assert.match(lines[0]!, new RegExp(`${plan.robots.length} robot\\(s\\), ${total} steps`));
  const one = selectRobot(plan, plan.robots[1]!.target);
  assert.equal(formatPlanText(one).split('\n').length, 3 + 2 * plan.robots[1]!.steps.length);
  assert.throws(() => selectRobot(plan, 'nope'), /no robot named nope/);
});
