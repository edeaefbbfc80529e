import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { assertGolden } from '../site/golden.ts';
import type { Plan } from '../plan/plan.ts';
import { executePlan, formatPlan } from './execute.ts';
import {
  AGENT_LOAD_BALANCER_FILES,
  AGENT_UNIT,
  DATASTORE_UNIT,
  K3S_BIN,
  LOCAL_SNAPSHOT_DIR,
  SERVED_EPOCH_FILE,
  SERVER_FENCE_FILE,
  SERVER_UNIT,
  SERVER_URL_DROPIN,
} from './paths.ts';
import {
  forgetNodesPlan,
  installPlan,
  joinWorkerPlan,
  resetWorkerPlan,
  snapshotSavePlan,
  startServerPlan,
  stopServerPlan,
  uninstallPlan,
} from './plans.ts';
import { datastoreStartPlan, replicaStartPlan } from './replica-plans.ts';
import { readK3sTemplates } from '../../cli/bootstrap/k3s-templates.ts';
import { K3S_SHA256, SERVER_SPEC, WORKER_SPEC } from './testing/fixtures.ts';
import { RobotModel } from './testing/robot-model.ts';

const testdata = new URL('./testdata/', import.meta.url).pathname;
const templates = readK3sTemplates();
const BINARY = 'k3s v1.33 arm64 (model)';
const BINARY_SHA = createHash('sha256').update(BINARY).digest('hex');
const IMAGE_BINARY = '/opt/k3s/k3s';
const install = (spec = SERVER_SPEC, sha = BINARY_SHA) =>
  installPlan(spec, {
    binary: { kind: 'onRobot', path: IMAGE_BINARY, sha256: sha },
    reapScript: templates.reapScript,
  });
const L1 = { id: 'r1', host: '10.20.0.11' };
const L2 = { id: 'r2', host: '10.20.0.12' };
const R1 = { id: SERVER_SPEC.nodeName, host: SERVER_SPEC.nodeIp };
const SAVED = `${LOCAL_SNAPSHOT_DIR}/edgectl-harbor-e5-t11-r1-1700000100`;

/** A robot whose image carries the k3s binary, with the install plan applied. */
async function installedRobot(node = 'r1'): Promise<RobotModel> {
  const m = new RobotModel({ node });
  m.seed(IMAGE_BINARY, BINARY, 0o755);
  await executePlan(m, install());
  m.journal.length = 0;
  return m;
}

describe('k3s plans (golden)', () => {
  test('every plan, step by step', () => {
    const plans: Array<[string, Plan]> = [
      ['install, binary already on the robot', install()],
      [
        'install, binary uploaded',
        installPlan(WORKER_SPEC, {
          binary: { kind: 'upload', localPath: 'dist/k3s-arm64', sha256: K3S_SHA256 },
          reapScript: templates.reapScript,
        }),
      ],
      [
        'install on a voter, k3s and etcd uploaded from the bundle',
        installPlan(SERVER_SPEC, {
          binary: { kind: 'upload', localPath: 'bundle/k3s-arm64', sha256: K3S_SHA256 },
          etcd: {
            etcd: { localPath: 'bundle/etcd-arm64/etcd', sha256: 'e7'.repeat(32) },
            etcdctl: { localPath: 'bundle/etcd-arm64/etcdctl', sha256: 'ec'.repeat(32) },
            revisionBump: {
              localPath: 'bundle/etcd-arm64/edgectl-etcd-revision-bump',
              sha256: 'rb'.repeat(32),
            },
          },
          reapScript: templates.reapScript,
        }),
      ],
      ['start server, epoch 5 (on the datastore replica-plans.ts started)', startServerPlan(SERVER_SPEC, 5)],
      ['stop server (demotion), epoch 5', stopServerPlan(SERVER_SPEC, 5)],
      ['join r1 as a worker, epoch 7', joinWorkerPlan(WORKER_SPEC, L1, 7)],
      ['reset worker', resetWorkerPlan(WORKER_SPEC)],
      [
        'snapshot save',
        snapshotSavePlan(SERVER_SPEC, `${LOCAL_SNAPSHOT_DIR}/edgectl-harbor-e5-t11-r1-1700000100`),
      ],
      ['forget gone nodes', forgetNodesPlan(SERVER_SPEC, ['old-2', 'old-1', 'old-2'])],
      ['uninstall', uninstallPlan(SERVER_SPEC)],
    ];
    assertGolden(`${testdata}plans.golden.txt`, plans.map(([t, p]) => formatPlan(t, p)).join('\n'));
  });

  test('the reap script template is the one the install plan writes', () => {
    const step = install().steps.find((s) => s.id === 'reap-script');
    assert.equal(step?.kind === 'writeFile' ? step.content : '', templates.reapScript);
    assert.match(templates.reapScript, /containerd-shims/);
  });

  test('no plan puts a secret or a token on a command line', () => {
    const all = [
      install(),
      startServerPlan(SERVER_SPEC, 1),
      stopServerPlan(SERVER_SPEC, 1),
      joinWorkerPlan(WORKER_SPEC, L1, 1),
      resetWorkerPlan(WORKER_SPEC),
    ];
    for (const plan of all) {
      for (const s of plan.steps) {
        if (s.kind !== 'run') continue;
        assert.doesNotMatch([...s.argv, ...(s.unless ?? [])].join(' '), /K10|token(?!-file)|password/i, s.id);
      }
    }
  });
});

describe('k3s plans on a robot model', () => {
  test('uninstall after serving leaves the robot as it was before the install, and twice changes nothing', async () => {
    const fresh = new RobotModel({ node: 'r1' });
    fresh.seed(IMAGE_BINARY, BINARY, 0o755);
    const m = await installedRobot();
    await executePlan(m, datastoreStartPlan(R1, 5, { kind: 'empty' }));
    await executePlan(m, startServerPlan(SERVER_SPEC, 5));
    await executePlan(m, snapshotSavePlan(SERVER_SPEC, SAVED));
    await executePlan(m, stopServerPlan(SERVER_SPEC, 5));
    await executePlan(m, replicaStartPlan(R1, L2, 6));
    await executePlan(m, joinWorkerPlan(WORKER_SPEC, L1, 7));
    await executePlan(m, uninstallPlan(SERVER_SPEC));
    assert.deepEqual(m.state(), fresh.state());
    await executePlan(m, uninstallPlan(SERVER_SPEC));
    assert.deepEqual(m.state(), fresh.state());
  });

  test('uninstall keeps a kubectl the robot had before, and removes only the links to k3s', async () => {
    const m = new RobotModel({ node: 'r1' });
    m.seed(IMAGE_BINARY, BINARY, 0o755);
    m.seed('/usr/local/bin/kubectl', 'the robot image kubectl', 0o755);
    await executePlan(m, install());
    assert.equal(m.content('/usr/local/bin/crictl'), '-> k3s');
    await executePlan(m, uninstallPlan(SERVER_SPEC));
    assert.equal(m.content('/usr/local/bin/kubectl'), 'the robot image kubectl');
    assert.equal(m.exists('/usr/local/bin/crictl'), false);
  });

  test('install puts k3s, the units and the reap script in place, fences the server, enables nothing', async () => {
    const m = await installedRobot();
    assert.equal(m.content(K3S_BIN), BINARY);
    assert.equal(m.files.get(K3S_BIN)?.mode, 0o755);
    assert.equal(m.content('/usr/local/bin/kubectl'), '-> k3s');
    assert.ok(m.exists(SERVER_FENCE_FILE));
    assert.deepEqual([...m.active], []);
  });

  test('install twice changes nothing, and the second run skips the binary copy', async () => {
    const m = await installedRobot();
    const before = m.state();
    const report = await executePlan(m, install());
    assert.deepEqual(m.state(), before);
    assert.equal(report.steps.find((s) => s.id === 'binary-install')?.outcome, 'skipped');
    assert.equal(report.steps.find((s) => s.id === 'link-kubectl')?.outcome, 'skipped');
  });

  test('install leaves an existing kubectl alone', async () => {
    const m = new RobotModel({ node: 'r1' });
    m.seed(IMAGE_BINARY, BINARY, 0o755);
    m.seed('/usr/bin/kubectl', 'distro kubectl', 0o755);
    await executePlan(m, install());
    assert.ok(!m.exists('/usr/local/bin/kubectl'));
    assert.ok(m.exists('/usr/local/bin/crictl'));
  });

  test('install refuses a binary on the robot whose checksum is not the expected one', async () => {
    const m = new RobotModel({ node: 'r1' });
    m.seed(IMAGE_BINARY, 'something else', 0o755);
    await assert.rejects(executePlan(m, install()), /binary-verify-source/);
    assert.ok(!m.exists(K3S_BIN));
  });

  test('re-running install on a serving leader does not fence its server', async () => {
    const m = await installedRobot();
    await executePlan(m, startServerPlan(SERVER_SPEC, 3));
    await executePlan(m, install());
    assert.ok(!m.exists(SERVER_FENCE_FILE));
    assert.ok(m.active.has(SERVER_UNIT));
  });

  test('start server: worker role gone, fence lifted, epoch recorded, k3s.service active', async () => {
    const m = await installedRobot();
    await executePlan(m, joinWorkerPlan(SERVER_SPEC, L2, 4));
    await executePlan(m, startServerPlan(SERVER_SPEC, 5));
    assert.deepEqual([...m.active], [SERVER_UNIT]);
    assert.ok(!m.exists(SERVER_URL_DROPIN), 'a server must not keep a worker server URL');
    assert.ok(!m.exists(SERVER_FENCE_FILE));
    assert.equal(m.content(SERVED_EPOCH_FILE), '5\n');
    assert.match(
      m.content('/etc/rancher/k3s/config.yaml') ?? '',
      /datastore-endpoint: https:\/\/127\.0\.0\.1:2379/,
    );
  });

  test('demotion stops k3s.service before anything else, fences it, and reaps its containerd', async () => {
    const m = await installedRobot();
    await executePlan(m, startServerPlan(SERVER_SPEC, 5));
    m.journal.length = 0;
    await executePlan(m, stopServerPlan(SERVER_SPEC, 5));
    assert.equal(m.journal[0], 'systemctl stop k3s.service');
    assert.ok(!m.active.has(SERVER_UNIT));
    assert.ok(m.exists(SERVER_FENCE_FILE));
    assert.equal(m.orphanContainerd, false);
    // Restart= or a stray start cannot bring the server back while fenced.
    await m.run(['systemctl', 'start', SERVER_UNIT]);
    assert.ok(!m.active.has(SERVER_UNIT));
  });

  test('rejoining another leader points the agent at it and drops the cached server list and old certs', async () => {
    const m = await installedRobot('vac-3');
    await executePlan(m, joinWorkerPlan(WORKER_SPEC, L1, 4));
    assert.match(m.content(AGENT_LOAD_BALANCER_FILES[0]) ?? '', /10\.20\.0\.11/);
    m.seed('/var/lib/rancher/k3s/agent/client-kubelet.crt', 'issued by r1');
    await executePlan(m, joinWorkerPlan(WORKER_SPEC, L2, 5));
    assert.match(m.content(SERVER_URL_DROPIN) ?? '', /server: https:\/\/10\.20\.0\.12:6443/);
    // The agent's cache now names only the new leader (the model's agent rewrites it on start).
    assert.doesNotMatch(m.content(AGENT_LOAD_BALANCER_FILES[0]) ?? '', /10\.20\.0\.11/);
    assert.ok(!m.exists('/var/lib/rancher/k3s/agent/client-kubelet.crt'));
    assert.deepEqual([...m.active], [AGENT_UNIT]);
    assert.ok(m.exists(SERVER_FENCE_FILE));
  });

  test('reset worker stops the agent and forgets the leader', async () => {
    const m = await installedRobot('vac-3');
    await executePlan(m, joinWorkerPlan(WORKER_SPEC, L1, 4));
    await executePlan(m, resetWorkerPlan(WORKER_SPEC));
    assert.deepEqual([...m.active], []);
    assert.ok(!m.exists(SERVER_URL_DROPIN));
    assert.ok(!m.exists(AGENT_LOAD_BALANCER_FILES[0]));
  });

  test("snapshot save writes the leader's datastore to the named file; a stopped datastore has none to give", async () => {
    const m = await installedRobot();
    await executePlan(m, datastoreStartPlan(R1, 5, { kind: 'empty' }));
    await executePlan(m, startServerPlan(SERVER_SPEC, 5));
    await executePlan(m, snapshotSavePlan(SERVER_SPEC, SAVED));
    assert.ok(m.exists(SAVED));
    await executePlan(m, stopServerPlan(SERVER_SPEC, 5));
    assert.ok(!m.active.has(DATASTORE_UNIT), 'a demoted leader serves no datastore');
    await assert.rejects(executePlan(m, snapshotSavePlan(SERVER_SPEC, `${SAVED}-2`)), /snapshot-save/);
  });
});

type Op =
  | { readonly kind: 'start'; readonly epoch: number }
  | { readonly kind: 'stop'; readonly epoch: number }
  | { readonly kind: 'join'; readonly leader: 0 | 1; readonly epoch: number }
  | { readonly kind: 'reset' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('start' as const), epoch: fc.integer({ min: 1, max: 9 }) }),
  fc.record({ kind: fc.constant('stop' as const), epoch: fc.integer({ min: 1, max: 9 }) }),
  fc.record({
    kind: fc.constant('join' as const),
    leader: fc.constantFrom(0 as const, 1 as const),
    epoch: fc.integer({ min: 1, max: 9 }),
  }),
  fc.record({ kind: fc.constant('reset' as const) }),
);

function planOf(op: Op): Plan {
  switch (op.kind) {
    case 'start':
      return startServerPlan(SERVER_SPEC, op.epoch);
    case 'stop':
      return stopServerPlan(SERVER_SPEC, op.epoch);
    case 'join':
      return joinWorkerPlan(SERVER_SPEC, op.leader === 0 ? L1 : L2, op.epoch);
    case 'reset':
      return resetWorkerPlan(SERVER_SPEC);
  }
}

describe('k3s plans are idempotent (property)', () => {
  test('running every plan twice ends where running it once does, and the role invariants hold', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 8 }), async (ops) => {
        const once = await installedRobot();
        const twice = await installedRobot();
        for (const op of ops) {
          const plan = planOf(op);
          await executePlan(once, plan);
          await executePlan(twice, plan);
          await executePlan(twice, plan);
          assert.deepEqual(twice.state(), once.state(), `after ${JSON.stringify(op)}`);
          assert.ok(
            !(once.active.has(SERVER_UNIT) && once.active.has(AGENT_UNIT)),
            'never a server and an agent at once',
          );
          if (op.kind === 'stop' || op.kind === 'join') {
            assert.ok(
              !once.active.has(SERVER_UNIT) && once.exists(SERVER_FENCE_FILE),
              'a demoted robot is fenced',
            );
            assert.equal(once.orphanContainerd, false, 'no containerd of a stopped role is left');
          }
          if (op.kind === 'start') assert.deepEqual([...once.active], [SERVER_UNIT]);
          if (op.kind === 'join') assert.deepEqual([...once.active], [AGENT_UNIT]);
        }
      }),
      { numRuns: 60 },
    );
  });
});
