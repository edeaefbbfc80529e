import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SnapshotReceiver, SnapshotStore } from './snapshots.ts';
import { sharedSnapshotKeys } from './testing/snapshot-keys.ts';
import { checkSnapshotRecord } from './snapshot-record.ts';
import type { SiteView, SnapshotRecord as RuntimeSnapshotRecord } from './runtime.ts';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { EdgeError } from '../errors.ts';
import type { CommandRunner, RunOptions, RunResult, WriteFileOptions } from '../exec/runner.ts';
import {
  AGENT_UNIT,
  DATASTORE_UNIT,
  ETCDCTL_BIN,
  RECEIVED_SNAPSHOT_DIR,
  SERVER_FENCE_FILE,
  SERVER_UNIT,
  SERVER_URL_DROPIN,
} from '../k3s/paths.ts';
import type { K3sProbes } from '../k3s/robot-io.ts';
import type { SnapshotRecord } from '../k3s/snapshots.ts';
import { SERVER_SPEC, WORKER_SPEC } from '../k3s/testing/fixtures.ts';
import { installedRobot } from '../k3s/testing/installed.ts';
import type { RobotModel } from '../k3s/testing/robot-model.ts';
import { InMemoryObjectClient } from '../site/in-memory-client.ts';
import { EtcdSiteModel } from '../k3s/testing/etcd-model.ts';
import { REPLICA_UNIT } from '../k3s/paths.ts';
import { REVISION_BUMP } from '../k3s/revision-bump.ts';
import { assertGolden } from '../site/golden.ts';

const k3sTestdata = new URL('../k3s/testdata/', import.meta.url).pathname;
import { K3sControlPlane, toRuntimeRecord, type K3sControlPlaneOptions } from './k3s.ts';
import { describeRuntimeContract } from './runtime.contract.ts';

/** Probes that read the model: the server is ready when k3s.service runs, a worker when its agent does. */
function modelProbes(m: RobotModel, seen: number[] = []): K3sProbes {
  return {
    serverReady: async () => m.active.has(SERVER_UNIT),
    workerReady: async (leader, since) => {
      seen.push(since);
      return m.active.has(AGENT_UNIT) && (m.content(SERVER_URL_DROPIN) ?? '').includes(leader.host);
    },
  };
}

function fakeClock(step = 1_000): () => number {
  let t = 1_700_000_000_000;
  return () => (t += step);
}

async function runtime(
  m: RobotModel,
  extra: Partial<K3sControlPlaneOptions> = {},
): Promise<{ rt: K3sControlPlane; api: InMemoryObjectClient }> {
  const api = new InMemoryObjectClient();
  const rt = new K3sControlPlane({
    runner: m,
    node: m.target === WORKER_SPEC.nodeName ? WORKER_SPEC : SERVER_SPEC,
    apiServer: async () => api,
    probes: modelProbes(m),
    pollMs: 1,
    delay: () => new Promise((r) => setImmediate(r)),
    now: fakeClock(),
    wallClock: fakeClock(),
    // One fake-clock step per read: each ask may read the revision again.
    replicaPollMs: 1_000,
    ...extra,
  });
  return { rt, api };
}

describeRuntimeContract(
  'k3s (robot model)',
  async () => (await runtime(await installedRobot(SERVER_SPEC))).rt,
);

/** A runner that holds one command until released: to put a demotion in the middle of a start. */
class GatedRunner implements CommandRunner {
  readonly target: string;
  private gate: { argv: string; reached: () => void; release: Promise<void> } | null = null;
  private readonly inner: RobotModel;
  constructor(inner: RobotModel) {
    this.inner = inner;
    this.target = inner.target;
  }
  /** hold: the next run of `argv` waits for the returned release(); `reached` resolves when it does. */
  hold(argv: string): { reached: Promise<void>; release: () => void } {
    let release!: () => void;
    let reached!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const reachedP = new Promise<void>((r) => (reached = r));
    this.gate = { argv, reached, release: released };
    return { reached: reachedP, release };
  }
  async run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    const g = this.gate;
    if (g && argv.join(' ') === g.argv) {
      this.gate = null;
      g.reached();
      await g.release;
    }
    return this.inner.run(argv, opts);
  }
  writeFile(path: string, content: string | Buffer, opts: WriteFileOptions): Promise<void> {
    return this.inner.writeFile(path, content, opts);
  }
  upload(localPath: string, path: string, opts: WriteFileOptions): Promise<void> {
    return this.inner.upload(localPath, path, opts);
  }
  readFile(path: string): Promise<Buffer | null> {
    return this.inner.readFile(path);
  }
  async close(): Promise<void> {}
}

describe('K3sControlPlane', () => {
  test('demotion stops k3s.service before anything else', async () => {
    const m = await installedRobot(SERVER_SPEC);
    const { rt } = await runtime(m);
    await rt.startServer(5);
    m.journal.length = 0;
    await rt.stopServer(5);
    assert.equal(m.journal[0], 'systemctl stop k3s.service');
    assert.ok(!m.active.has(SERVER_UNIT));
    assert.ok(m.exists(SERVER_FENCE_FILE));
    assert.equal(rt.status().server, null);
  });

  for (const heldAt of ['systemctl start k3s.service', `rm -f -- ${SERVER_FENCE_FILE}`]) {
    test(`a demotion during a start wins, even with the start held at \`${heldAt}\``, async () => {
      const m = await installedRobot(SERVER_SPEC);
      const gated = new GatedRunner(m);
      const { rt } = await runtime(m, { runner: gated });
      const gate = gated.hold(heldAt);
      const starting = rt.startServer(5);
      await gate.reached;
      const stopping = rt.stopServer(5);
      // Let the stop plan run while the start's step is held, then let the held step go.
      await new Promise((r) => setImmediate(r));
      gate.release();
      await assert.rejects(
        starting,
        (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_K3S_SUPERSEDED',
      );
      await stopping;
      assert.ok(!m.active.has(SERVER_UNIT), 'no server runs after the demotion');
      assert.ok(m.exists(SERVER_FENCE_FILE), 'the fence is in place after the demotion');
      assert.equal(rt.status().server, null);
    });
  }

  test('a late stop of an older epoch leaves a newer server alone', async () => {
    const m = await installedRobot(SERVER_SPEC);
    const { rt } = await runtime(m);
    await rt.startServer(6);
    await rt.stopServer(5);
    assert.ok(m.active.has(SERVER_UNIT));
    assert.deepEqual(rt.status().server, { epoch: 6, state: 'serving' });
  });

  test('a new leader restores the newest verified snapshot it holds before serving', async () => {
    const m = await installedRobot(SERVER_SPEC);
    const content = JSON.stringify({ rev: 40, writes: ['written on r2 in epoch 4'] });
    const record: SnapshotRecord = {
      v: 1,
      name: 'edgectl-harbor-e4-t9-r2-1700000100',
      node: 'r2',
      epoch: 4,
      term: 9,
      sha256: createHash('sha256').update(content).digest('hex'),
      size: Buffer.byteLength(content),
      createdAt: 1_700_000_100_000,
    };
    m.seed(`${RECEIVED_SNAPSHOT_DIR}/${record.name}`, content);
    const { rt } = await runtime(m, { snapshots: { records: () => [record] } });
    await rt.startServer(5);
    const restoreAt = m.journal.findIndex((l) =>
      l.startsWith(`${ETCDCTL_BIN} snapshot restore ${RECEIVED_SNAPSHOT_DIR}/${record.name} --data-dir=`),
    );
    const verifyAt = m.journal.findIndex((l) => l.startsWith('sha256sum --check'));
    assert.ok(verifyAt >= 0 && verifyAt < restoreAt, 'checked against its record first');
    assert.ok(restoreAt < m.journal.indexOf(`systemctl start ${DATASTORE_UNIT}`), 'restored, then served');
    assert.ok(
      m.journal.indexOf(`systemctl start ${DATASTORE_UNIT}`) <
        m.journal.indexOf('systemctl start k3s.service'),
      'the datastore runs before k3s starts on it',
    );
    assert.match(String(rt.status().details?.serverStart), /^snapshot: /);
  });

  test('it resumes its own etcd when that is newer than every snapshot', async () => {
    const m = await installedRobot(SERVER_SPEC);
    const { rt } = await runtime(m, { snapshots: { records: () => [], held: async () => [] } });
    await rt.startServer(5);
    await rt.stopServer(5);
    await rt.startServer(7);
    assert.ok(
      m.journal.includes(
        `${ETCDCTL_BIN} snapshot restore /var/lib/edgectl/etcd/epoch-5/member/snap/db --skip-hash-check --data-dir=/var/lib/edgectl/etcd/epoch-7 --name=r1 --initial-cluster=r1=https://10.20.0.11:2380 --initial-advertise-peer-urls=https://10.20.0.11:2380`,
      ),
    );
    assert.ok(!m.journal.some((l) => l.includes('revision-bump')), 'its own history needs no bump');
    assert.match(String(rt.status().details?.serverStart), /^datastore: /);
  });

  test('after it serves, it deletes the Nodes and node-password secrets of robots that left the site', async () => {
    const m = await installedRobot(SERVER_SPEC, { clusterNodes: ['r1', 'r2', 'old-9'] });
    const { rt } = await runtime(m, { siteMembers: () => ['r1', 'r2', 'vac-3'] });
    await rt.startServer(5);
    assert.deepEqual(m.clusterNodes, ['r1', 'r2']);
    assert.ok(
      m.journal.includes(
        '/usr/local/bin/k3s kubectl -n kube-system delete secret old-9.node-password.k3s --ignore-not-found',
      ),
    );
  });

  test('a server that never gets ready ends in a readiness timeout, not a silent success', async () => {
    const m = await installedRobot(SERVER_SPEC);
    const { rt } = await runtime(m, {
      probes: { serverReady: async () => false, workerReady: async () => false },
      serverReadyTimeoutMs: 30_000,
    });
    await assert.rejects(
      rt.startServer(5),
      (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_K3S_READINESS_TIMEOUT',
    );
    assert.equal(rt.status().server, null);
  });

  test('a failing step surfaces as a coded error naming the step', async () => {
    const m = await installedRobot(SERVER_SPEC, {
      intercept: (argv) =>
        argv.join(' ') === 'systemctl start k3s.service'
          ? { code: 1, stdout: '', stderr: 'Job failed' }
          : undefined,
    });
    const { rt } = await runtime(m);
    await assert.rejects(rt.startServer(5), /step start-server .* exited 1: Job failed/);
  });

  test('the leader snapshot becomes a site-log record that matches the file', async () => {
    const m = await installedRobot(SERVER_SPEC);
    const { rt } = await runtime(m);
    await assert.rejects(rt.takeSnapshot(3), /no serving k3s server/);
    await rt.startServer(5);
    const r = await rt.takeSnapshot(11);
    assert.match(r.name, /^edgectl-harbor-e5-t11-r1-\d+$/);
    const file = m.content(`/var/lib/edgectl/snapshots/local/${r.name}`) ?? '';
    assert.equal(r.sha256, createHash('sha256').update(file).digest('hex'));
    assert.equal(r.size, Buffer.byteLength(file));
    assert.deepEqual([r.epoch, r.term, r.node], [5, 11, 'r1']);
    assert.ok(
      checkSnapshotRecord(toRuntimeRecord(r)).ok,
      'its record passes the checks every receiver makes',
    );
  });

  test('a leader ships its snapshot to one voter at a time: each push seals in a child process of its own', async () => {
    // Two voters behind one loopback server that holds each push a while before it refuses it,
    // and counts how many it holds at once.
    let holding = 0;
    let most = 0;
    const seen: string[] = [];
    const server = createServer((req, res) => {
      holding++;
      most = Math.max(most, holding);
      const header = Buffer.from(String(req.headers['x-edgectl-snapshot']), 'base64url').toString('utf8');
      seen.push((JSON.parse(header) as { to: string }).to);
      req.resume();
      setTimeout(() => {
        holding--;
        res.writeHead(409).end('busy');
      }, 100);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const keys = sharedSnapshotKeys(Buffer.alloc(32, 7), ['r1', 'r2', 'r3']);
      const m = await installedRobot(SERVER_SPEC);
      const { rt } = await runtime(m, {
        snapshotKeys: keys,
        snapshotPort: (server.address() as AddressInfo).port,
      });
      rt.setSiteView({ leadership: () => ({ term: 5, leader: 'r1' }), committedSnapshots: () => [] });
      await rt.startServer(5);
      const rec = await rt.snapshot(5);
      const to = [
        { id: 'r2', host: '127.0.0.1' },
        { id: 'r3', host: '127.0.0.1' },
      ];
      assert.deepEqual(await rt.shipSnapshot(rec.name, to), []);
      assert.deepEqual(seen, ['r2', 'r3'], 'both voters were offered the snapshot');
      assert.equal(most, 1, 'never two pushes at once');
    } finally {
      server.close();
    }
  });

  test('a leader ships its snapshot sealed to the voters; a new leader restores it once its record is committed', async () => {
    // The receiver a voter (r2) runs, on loopback, with its own store (no suffix: k3s restores <dir>/<name>).
    const dir = mkdtempSync(join(tmpdir(), 'edgectl-k3s-recv-'));
    const keys = sharedSnapshotKeys(Buffer.alloc(32, 7), ['r1', 'r2']);
    const store = new SnapshotStore(dir, 3, '');
    const receiver = await SnapshotReceiver.start({ self: 'r2', address: '127.0.0.1', port: 0, keys, store });
    const committed: RuntimeSnapshotRecord[] = [];
    const view = (term: number, leader: string): SiteView => ({
      leadership: () => ({ term, leader }),
      committedSnapshots: () => committed,
    });
    receiver.setSiteView(view(5, 'r1'));
    const to = [{ id: 'r2', host: '127.0.0.1' }];
    const port = receiver.port;
    try {
      const m = await installedRobot(SERVER_SPEC);
      const { rt } = await runtime(m, { snapshotKeys: keys, snapshotPort: port });
      rt.setSiteView(view(5, 'r1'));
      await rt.startServer(5);
      const rec = await rt.snapshot(5);
      assert.deepEqual([rec.epoch, rec.from], [5, 'r1']);
      assert.deepEqual(await rt.shipSnapshot(rec.name, to), ['r2']);
      const file = m.content(`/var/lib/edgectl/snapshots/local/${rec.name}`) ?? '';
      assert.equal(readFileSync(store.path(rec), 'utf8'), file, 'the voter holds the same bytes');
      assert.deepEqual(store.records(), [rec]);
      // A robot with another site's key is refused: nothing is kept.
      const { rt: other } = await runtime(await installedRobot(SERVER_SPEC), {
        snapshotKeys: sharedSnapshotKeys(Buffer.alloc(32, 9), ['r1', 'r2']),
        snapshotPort: port,
      });
      other.setSiteView(view(5, 'r1'));
      await other.startServer(5);
      const foreign = await other.snapshot(5);
      assert.deepEqual(await other.shipSnapshot(foreign.name, to), []);
      assert.equal(store.records().length, 1);
      assert.equal(receiver.stats().unauthenticated, 1);

      // r2 leads next (epoch 7), holding the received file. Before the record is committed in the
      // site log it does not restore it; once committed it does.
      const r2 = await installedRobot(SERVER_SPEC);
      r2.seed(`${RECEIVED_SNAPSHOT_DIR}/${rec.name}`, readFileSync(store.path(rec), 'utf8'));
      const { rt: uncommitted } = await runtime(r2);
      uncommitted.setSiteView(view(7, 'r2'));
      await uncommitted.startServer(7);
      assert.ok(
        !r2.journal.some((l) => l.includes('snapshot restore')),
        'an uncommitted record is not restored',
      );
      await uncommitted.stopServer(7);
      const r2b = await installedRobot(SERVER_SPEC);
      r2b.seed(`${RECEIVED_SNAPSHOT_DIR}/${rec.name}`, readFileSync(store.path(rec), 'utf8'));
      const { rt: next } = await runtime(r2b);
      committed.push(rec);
      next.setSiteView(view(7, 'r2'));
      await next.startServer(7);
      assert.ok(
        r2b.journal.some((l) => l.includes(`snapshot restore ${RECEIVED_SNAPSHOT_DIR}/${rec.name} `)),
        'the committed snapshot is restored',
      );
    } finally {
      await receiver.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the site's API server is the k3s server's, for the serving epoch only", async () => {
    const m = await installedRobot(SERVER_SPEC);
    const { rt, api } = await runtime(m);
    await assert.rejects(rt.siteServer(5), /no serving k3s server of epoch 5/);
    await rt.startServer(5);
    assert.equal(await rt.siteServer(5), api);
    await assert.rejects(rt.siteServer(4), /no serving k3s server of epoch 4/);
    await rt.stopServer(5);
    await assert.rejects(rt.siteServer(5), /no serving k3s server of epoch 5/);
  });

  test("the site's API client is made once per serving epoch and closed when that server stops, or the runtime closes", async () => {
    const m = await installedRobot(SERVER_SPEC);
    const made: string[] = [];
    const client = (name: string) => {
      made.push(`make ${name}`);
      return Object.assign(new InMemoryObjectClient(), {
        close: async () => void made.push(`close ${name}`),
      });
    };
    let n = 0;
    const { rt } = await runtime(m, { apiServer: async () => client(`c${++n}`) });
    await rt.startServer(5);
    const first = await rt.siteServer(5);
    assert.equal(await rt.siteServer(5), first);
    assert.deepEqual(made, ['make c1']);
    await rt.stopServer(5);
    assert.deepEqual(made, ['make c1', 'close c1']);
    await rt.startServer(6);
    assert.notEqual(await rt.siteServer(6), first);
    await rt.close();
    assert.deepEqual(made, ['make c1', 'close c1', 'make c2', 'close c2']);
  });

  test('a robot that is not server-capable refuses to start a server', async () => {
    const m = await installedRobot(WORKER_SPEC);
    const { rt } = await runtime(m);
    await assert.rejects(
      rt.startServer(1),
      (e: unknown) => e instanceof EdgeError && e.code === 'EDGE_NOT_SERVER_CAPABLE',
    );
    assert.ok(!m.active.has(SERVER_UNIT));
  });

  test('a worker waits for a heartbeat from this join on, and rejoins a new leader cleanly', async () => {
    const m = await installedRobot(WORKER_SPEC);
    const seen: number[] = [];
    const { rt } = await runtime(m, { probes: modelProbes(m, seen) });
    await rt.joinAsWorker({ id: 'r1', host: '10.20.0.11' }, 4);
    await rt.joinAsWorker({ id: 'r2', host: '10.20.0.12' }, 5);
    assert.deepEqual(rt.status().worker, { leader: 'r2', epoch: 5, state: 'ready' });
    assert.match(m.content(SERVER_URL_DROPIN) ?? '', /10\.20\.0\.12/);
    assert.ok(seen.length >= 2 && seen[1]! > seen[0]!, 'each join probes with its own start time');
  });
});

describe('K3sControlPlane replication (robot models, etcd modelled)', () => {
  const R2_SPEC = { ...SERVER_SPEC, nodeName: 'r2', nodeIp: '10.20.0.12' };
  const R1 = { id: 'r1', host: SERVER_SPEC.nodeIp };
  const R2 = { id: 'r2', host: R2_SPEC.nodeIp };

  async function voters() {
    const etcd = new EtcdSiteModel();
    const m1 = await installedRobot(SERVER_SPEC, { etcd });
    const m2 = await installedRobot(R2_SPEC, { etcd });
    const rt1 = (await runtime(m1)).rt;
    const rt2 = (await runtime(m2, { node: R2_SPEC })).rt;
    return { etcd, m1, m2, rt1, rt2 };
  }

  /** The replica's revision is read in the background: ask, let the read finish, ask again. */
  async function position(rt: K3sControlPlane) {
    rt.replicaPosition();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    return rt.replicaPosition();
  }

  /** Ask until a read has happened since a learner's change (the fake clock moves on each ask). */
  async function settled(rt: K3sControlPlane) {
    for (let i = 0; i < 4; i++) await position(rt);
    return rt.replicaPosition();
  }

  test('the leader power-fails; the standby starts the next epoch from its replica with every write', async () => {
    const { etcd, m1, m2, rt1, rt2 } = await voters();
    await rt1.startServer(7);
    assert.equal(etcd.role('r1'), 'datastore');
    await rt2.followReplica(R1, 7);
    assert.equal(await position(rt2), null, 'not a member yet: no position');
    await rt1.syncReplicas(7, [R2]);
    assert.equal(rt1.standby(), 'r2');
    const acknowledged = ['deploy-a', 'deploy-b', 'configmap-c'].map((k) => etcd.write('r1', k));
    assert.deepEqual(await position(rt2), { epoch: 7, revision: acknowledged.at(-1) });
    // A second sync changes nothing: the caught-up standby is kept.
    m1.journal.length = 0;
    await rt1.syncReplicas(7, [R2]);
    assert.ok(!m1.journal.some((l) => l.includes('member add') || l.includes('member remove')));

    etcd.powerOff('r1');
    m2.journal.length = 0;
    await rt2.startServer(8);
    assert.deepEqual(etcd.dataOf('r2')?.writes, ['deploy-a', 'deploy-b', 'configmap-c'], 'no write lost');
    assert.ok((etcd.dataOf('r2')?.rev ?? 0) > (acknowledged.at(-1) ?? 0) + REVISION_BUMP - 1);
    assert.match(String(rt2.status().details?.serverStart), /^replica: the replica of epoch 7 at revision 4/);
    assertGolden(`${k3sTestdata}takeover-from-replica.journal.txt`, `${m2.journal.join('\n')}\n`);
    const at = (prefix: string) => m2.journal.findIndex((l) => l.startsWith(prefix));
    const order = [
      `systemctl stop ${REPLICA_UNIT}`,
      `${ETCDCTL_BIN} snapshot restore /var/lib/edgectl/etcd/replica-epoch-7/member/snap/db --skip-hash-check`,
      '/usr/local/bin/edgectl-etcd-revision-bump --data-dir=/var/lib/edgectl/etcd/epoch-8',
      `systemctl start ${DATASTORE_UNIT}`,
      'systemctl start k3s.service',
    ].map(at);
    assert.ok(
      order.every((i) => i >= 0),
      `every step ran: ${order.join(',')}`,
    );
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      'stop, restore, bump, datastore, k3s',
    );
  });

  test('the old leader returns: it discards its unreplicated writes and becomes the new standby', async () => {
    const { etcd, m1, rt1, rt2 } = await voters();
    await rt1.startServer(7);
    await rt2.followReplica(R1, 7);
    await rt1.syncReplicas(7, [R2]);
    etcd.write('r1', 'replicated');
    etcd.setCut('r1', true);
    etcd.write('r1', 'acknowledged-by-r1-alone');
    await position(rt2);
    await rt2.startServer(8);
    await rt2.syncReplicas(8, []);
    etcd.setCut('r1', false);
    await rt1.stopServer(7);
    assert.equal(etcd.role('r1'), null, 'a demoted leader serves no datastore');
    await rt1.followReplica(R2, 8);
    assert.ok(!m1.exists('/var/lib/edgectl/etcd/epoch-7'), 'its own epoch is discarded, never merged');
    await rt2.syncReplicas(8, [R1]);
    assert.equal(rt2.standby(), 'r1');
    etcd.write('r2', 'after-failover');
    assert.deepEqual(etcd.dataOf('r1')?.writes, ['replicated', 'after-failover'], 'one history');
    const p = await position(rt1);
    assert.equal(p?.epoch, 8);
  });

  test('a voter keeps its replica of epoch 7 until its replica of the next epoch holds as much', async () => {
    const { etcd, m2, rt1, rt2 } = await voters();
    await rt1.startServer(7);
    await rt2.followReplica(R1, 7);
    await rt1.syncReplicas(7, [R2]);
    etcd.write('r1', 'a');
    assert.equal((await position(rt2))?.epoch, 7);
    // r1 leads again in epoch 9 (it won on its site log): r2 follows, holding epoch 7's replica.
    await rt1.stopServer(7);
    await rt1.startServer(9);
    await rt2.followReplica(R1, 9);
    assert.ok(m2.exists('/var/lib/edgectl/etcd/replica-epoch-7/member/snap/db'), 'held');
    assert.deepEqual(rt2.replicaPosition(), { epoch: 7, revision: 2 }, 'still what a takeover would use');
    await rt1.syncReplicas(9, [R2]);
    assert.equal((await settled(rt2))?.epoch, 9);
    await new Promise((r) => setImmediate(r));
    assert.ok(!m2.exists('/var/lib/edgectl/etcd/replica-epoch-7'), 'discarded once the new one applied');
  });

  test('a voter whose learner was never added does not take over from its (empty) data file', async () => {
    const { etcd, m2, rt1, rt2 } = await voters();
    await rt1.startServer(7);
    etcd.write('r1', 'a');
    await rt2.followReplica(R1, 7);
    assert.ok(m2.exists('/var/lib/edgectl/etcd/replica-epoch-7/member/snap/db'), 'etcd left a data file');
    assert.equal(await position(rt2), null);
    etcd.powerOff('r1');
    await rt2.startServer(8);
    assert.ok(!m2.journal.some((l) => l.includes('snapshot restore')), 'nothing restored from it');
    assert.match(String(rt2.status().details?.serverStart), /^empty: /);
  });

  test('a learner that does not answer is read less and less often, and at once again when it joins', async () => {
    const etcd = new EtcdSiteModel();
    const m1 = await installedRobot(SERVER_SPEC, { etcd });
    const m2 = await installedRobot(R2_SPEC, { etcd });
    let t = 0;
    const rt1 = (await runtime(m1)).rt;
    const rt2 = (await runtime(m2, { node: R2_SPEC, now: () => t, replicaPollMs: 1000 })).rt;
    await rt1.startServer(7);
    etcd.write('r1', 'a');
    await rt2.followReplica(R1, 7);
    const reads = () => m2.journal.filter((l) => l.includes('endpoint status')).length;
    for (let i = 0; i < 64; i++, t += 1000) await position(rt2);
    // Not a member: reads at 0, 2, 6, 14, 30, 46 and 62 s (the wait doubles up to 16 s), not 64.
    assert.equal(reads(), 7);
    await rt1.syncReplicas(7, [R2]);
    t += 16_000;
    assert.deepEqual(await position(rt2), { epoch: 7, revision: 2 });
    for (let i = 0; i < 3; i++) {
      t += 1000;
      await position(rt2);
    }
    assert.equal(reads(), 11, 'once it answers, every second again');
  });

  test('a replica that does not restore (corrupt) falls back to the committed snapshot', async () => {
    const { etcd, m2, rt1 } = await voters();
    await rt1.startServer(7);
    etcd.write('r1', 'a');
    const content = JSON.stringify({ rev: 40, writes: ['in the snapshot'] });
    const record: SnapshotRecord = {
      v: 1,
      name: 'edgectl-harbor-e7-t7-r1-1700000100',
      node: 'r1',
      epoch: 7,
      term: 7,
      sha256: createHash('sha256').update(content).digest('hex'),
      size: Buffer.byteLength(content),
      createdAt: 1_700_000_100_000,
    };
    m2.seed(`${RECEIVED_SNAPSHOT_DIR}/${record.name}`, content);
    const rt2 = (await runtime(m2, { node: R2_SPEC, snapshots: { records: () => [record] } })).rt;
    await rt2.followReplica(R1, 7);
    await rt1.syncReplicas(7, [R2]);
    assert.equal((await settled(rt2))?.epoch, 7);
    etcd.powerOff('r1');
    // The disk under the replica went bad.
    m2.seed('/var/lib/edgectl/etcd/replica-epoch-7/member/snap/db', 'not a bbolt file');
    await rt2.startServer(8);
    assert.deepEqual(etcd.dataOf('r2')?.writes, ['in the snapshot']);
    assert.match(
      String(rt2.status().details?.serverStart),
      /^snapshot: .*the replica of epoch 7 did not restore/,
    );
    assert.ok(!m2.exists('/var/lib/edgectl/etcd/replica-epoch-7'), 'the bad replica is gone');
  });

  test('etcd failing to start after a takeover restore fails the start and keeps the replica', async () => {
    const etcd = new EtcdSiteModel();
    let etcdStarts = true;
    const m1 = await installedRobot(SERVER_SPEC, { etcd });
    const m2 = await installedRobot(R2_SPEC, {
      etcd,
      intercept: (argv) =>
        !etcdStarts && argv.join(' ') === `systemctl start ${DATASTORE_UNIT}`
          ? { code: 1, stdout: '', stderr: 'Job for edgectl-etcd.service failed' }
          : undefined,
    });
    const rt1 = (await runtime(m1)).rt;
    const rt2 = (await runtime(m2, { node: R2_SPEC })).rt;
    await rt1.startServer(7);
    await rt2.followReplica(R1, 7);
    await rt1.syncReplicas(7, [R2]);
    etcd.write('r1', 'a');
    assert.equal((await settled(rt2))?.epoch, 7);
    etcd.powerOff('r1');
    etcdStarts = false;
    await assert.rejects(rt2.startServer(8), /start-edgectl-etcd/);
    assert.ok(m2.exists('/var/lib/edgectl/etcd/replica-epoch-7/member/snap/db'), 'the replica is kept');
    etcdStarts = true;
    await rt2.startServer(8);
    assert.deepEqual(etcd.dataOf('r2')?.writes, ['a'], 'the retry resumes the restored datastore');
  });

  test('a worker neither follows nor reports a replica', async () => {
    const m = await installedRobot(WORKER_SPEC);
    const { rt } = await runtime(m);
    await rt.followReplica(R1, 7);
    assert.equal(rt.replicaPosition(), null);
    assert.ok(!m.journal.some((l) => l.includes('etcd')), 'no etcd command on a worker');
  });
});
