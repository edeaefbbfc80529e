/**
 * The lab's ControlPlaneRuntime: the agent's own code paths decide when to start, stop, join and
 * reset (statecharts/node.ts); this runtime does it with real processes inside the robot's network
 * namespace. A leader runs a real etcd + kube-apiserver for its epoch and registers itself with a
 * lab kubelet (like k3s server's embedded agent); a worker runs a lab kubelet against the leader's
 * server. It stands in only for k3s, which needs a robot's systemd (docs/lab.md).
 *
 * Every epoch's server uses the same site identity (CA, serving certificate, tokens), so workers
 * trust any elected robot's server, as the k3s custom CA and fixed tokens do on robots.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { EdgeError } from '../../agent/errors.ts';
import type {
  ControlPlaneRuntime,
  ControlPlaneStatus,
  LeaderEndpoint,
  SiteView,
} from '../../agent/control-plane/runtime.ts';
import {
  nodeTokenOf,
  startApiServer,
  type ApiServerHandle,
  type ApiServerIdentity,
} from '../kube-apiserver/apiserver.ts';
import { FrontDoor } from './front-door.ts';
import {
  pushSnapshot,
  SnapshotStore,
  type SnapshotKeys,
  type SnapshotReceiver,
  type SnapshotRecord,
} from '../../agent/control-plane/snapshots.ts';
import { startSnapshotSharing } from '../../agent/control-plane/snapshot-sharing.ts';
import type { ObjectClient } from '../../agent/site/object-client.ts';
import { LabKubelet } from './kubelet.ts';
import type { RealRobotNode } from './real-robot-node.ts';
import { monotonicMs } from '../../agent/clock.ts';
import {
  compareReplica,
  describeReplica,
  etcdPeerUrl,
  standbyPlan,
  takeoverSource,
  type ReplicaPosition,
} from '../../agent/control-plane/replica.ts';
import { etcdPeerTlsIn, type EtcdPeerTls } from '../kube-apiserver/etcd-peer.ts';
import { applyMemberChange, EtcdReplica, listMembers } from './etcd-replica.ts';
import { bumpRevision, type RevisionBump } from './revision-bump.ts';

export const LAB_API_PORT = 6443;
/** kube-apiserver's own port, on loopback behind the front door. */
export const LAB_UPSTREAM_PORT = 6444;
const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;

/** wallClock turns a monotonic time (agent/clock.ts) into ISO wall-clock time, for logs. */
function wallClock(monotonic: number): string {
  return new Date(Date.now() - (monotonicMs() - monotonic)).toISOString();
}

export interface LabControlPlaneOptions {
  readonly nodeId: string;
  readonly siteId: string;
  /** The robot's address on the site network: its API server listens here. */
  readonly address: string;
  readonly identity: ApiServerIdentity;
  /** Per-epoch etcd data and logs: <stateDir>/lab-cp/epoch-<n>. */
  readonly stateDir: string;
  readonly log: Logger;
  readonly kubeletRenewMs?: number;
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * Snapshots kept here (lab: <stateDir>/snapshots), the secrets that push them, and this robot's
   * receiver of the leader's pushes; none: no snapshots.
   */
  readonly snapshots?: {
    readonly store: SnapshotStore;
    readonly keys: SnapshotKeys;
    readonly receiver?: SnapshotReceiver;
  };
  /**
   * A real node (containerd + kubelet) instead of the lab kubelet, and kube-controller-manager +
   * kube-scheduler beside the leader's server (`lab up --node real`).
   */
  readonly realNode?: RealRobotNode;
  /**
   * Continuous replication of etcd to the voters (docs/k3s.md "Replication"): this voter's peer
   * certificate, and how many learners the leader's etcd takes (1 with etcd 3.4). Absent: no
   * replication, snapshots only.
   */
  readonly replication?: { readonly tls: EtcdPeerTls; readonly maxLearners: number };
}

export class LabControlPlane implements ControlPlaneRuntime {
  readonly kind = 'lab';
  private readonly o: LabControlPlaneOptions;
  private server: {
    epoch: number;
    state: 'starting' | 'serving';
    handle: ApiServerHandle | null;
    door?: FrontDoor;
  } | null = null;
  private fence: ((epoch: number) => number | null) | null = null;
  private selfKubelet: LabKubelet | null = null;
  /** The join of this robot's node to a leader's server: the lab kubelet's, or null for a real node. */
  private worker: {
    leader: string;
    epoch: number;
    state: 'joining' | 'ready';
    server: string;
    kubelet: LabKubelet | null;
  } | null = null;
  private coldStartMs: number | null = null;
  /**
   * How long each step of the serving epoch's start took, ms (status details, bench:rpo): the
   * replica and snapshot takeovers differ only in these steps, so a slower one shows which.
   */
  private startSteps: StartSteps | null = null;
  private restoredFrom: string | null = null;
  private snapshotsTaken = 0;
  private siteView: SiteView | null = null;
  private replica: EtcdReplica | null = null;
  /**
   * The replica of the previous epoch, stopped, kept until the new epoch's replica has joined: a
   * new leader may restore a snapshot and hand leadership to this robot (the election's handover),
   * which then takes over from it.
   */
  private held: EtcdReplica | null = null;
  private restoredFromReplica: ReplicaPosition | null = null;
  /** The revision the restored datastore of the serving epoch moved from and to (one history). */
  private revisionBump: RevisionBump | null = null;
  private standbyNode: string | null = null;

  constructor(o: LabControlPlaneOptions) {
    this.o = o;
  }

  private url(host: string): string {
    return `https://${host}:${LAB_API_PORT}`;
  }

  async startServer(epoch: number): Promise<void> {
    if (this.server && this.server.epoch !== epoch) await this.stopServer(this.server.epoch);
    if (this.server?.epoch === epoch && this.server.state === 'serving') return;
    this.server = { epoch, state: 'starting', handle: null };
    this.startSteps = null;
    const began = performance.now();
    const dir = join(this.o.stateDir, 'lab-cp', `epoch-${epoch}`);
    this.pruneOldEpochs(epoch);
    this.o.log.info({ epoch }, `${this.o.nodeId} starts kube-apiserver + etcd for epoch ${epoch}`);
    // A new epoch starts from the newest snapshot this robot holds whose record the site log has
    // committed and whose bytes match it, so the site keeps its objects.
    const committed = this.siteView?.committedSnapshots() ?? [];
    const fresh = !existsSync(join(dir, 'etcd'));
    const restorable = fresh ? (this.o.snapshots?.store.restorable(committed) ?? null) : null;
    // Its own replica first, when it is at least as new as that snapshot (agent/control-plane/replica.ts).
    // Kept until this epoch serves: a start that fails takes over from the same replica next time.
    for (const r of [this.replica, this.held]) await r?.stop({ graceful: true });
    const replicasStopped = performance.now();
    const replica = this.freshestReplica();
    const source = fresh
      ? takeoverSource({ replica: replica?.position() ?? null, snapshot: restorable?.record ?? null })
      : { kind: 'empty' as const };
    const fromReplica = source.kind === 'replica' && replica ? replica : null;
    const restore = source.kind === 'snapshot' ? source.record : null;
    if (fromReplica)
      this.o.log.info(
        {
          epoch,
          replica: describeReplica(fromReplica.position()),
          snapshot: restorable?.record.name ?? null,
        },
        `${this.o.nodeId} takes over epoch ${epoch} from its replica of epoch ${fromReplica.epoch} (revision ${fromReplica.position()?.revision})`,
      );
    if (restore)
      this.o.log.info(
        { epoch, snapshot: restore.name, fromEpoch: restore.epoch },
        `${this.o.nodeId} restores snapshot ${restore.name} (epoch ${restore.epoch}) for epoch ${epoch}`,
      );
    let bumped: RevisionBump | null = null;
    let bumpMs: number | null = null;
    // kube-apiserver listens on loopback only; the robot's API port is the fenced front door.
    const handle = await startApiServer({
      identity: this.o.identity,
      dir,
      bindAddress: '127.0.0.1',
      ports: { secure: LAB_UPSTREAM_PORT, etcdClient: ETCD_CLIENT_PORT, etcdPeer: ETCD_PEER_PORT },
      readyTimeoutMs: 60_000,
      restoreFrom: fromReplica ? fromReplica.dbPath : restore ? restorable?.path : undefined,
      restoreSkipHashCheck: fromReplica !== null,
      // One history: the restored revision moves past any the old leader can have handed out.
      afterRestore: async (etcdDir) => {
        const t = performance.now();
        const b = await bumpRevision(etcdDir);
        bumpMs = performance.now() - t;
        bumped = b;
        this.o.log.info(
          { epoch, from: b.from, to: b.to },
          `${this.o.nodeId} moves epoch ${epoch}'s restored etcd from revision ${b.from} to ${b.to}, all before compacted`,
        );
      },
      ...(this.o.replication
        ? {
            etcdName: this.o.nodeId,
            peer: { url: etcdPeerUrl(this.o.address, ETCD_PEER_PORT), tls: this.o.replication.tls },
          }
        : {}),
    });
    this.restoredFrom =
      restore?.name ?? (fromReplica ? `replica ${describeReplica(fromReplica.position())}` : null);
    this.restoredFromReplica = fromReplica?.position() ?? null;
    this.revisionBump = bumped;
    const apiServerReady = performance.now();
    // The replica's data now lives on in this epoch's etcd; another epoch's replica starts clean.
    for (const r of [this.replica, this.held]) await r?.discard();
    this.replica = null;
    this.held = null;
    const replicasDiscarded = performance.now();
    const steps = (served: number): StartSteps => ({
      stopReplicasMs: replicasStopped - began,
      restoreMs: handle.restoreMs,
      bumpMs,
      apiServerColdStartMs: handle.coldStartMs,
      startApiServerMs: apiServerReady - replicasStopped,
      discardReplicasMs: replicasDiscarded - apiServerReady,
      registerMs: served - replicasDiscarded,
      totalMs: served - began,
    });
    if (this.server?.epoch !== epoch) {
      // Fenced while starting: a higher term arrived and stopServer ran. Never serve this epoch.
      await handle.stop({ fast: true });
      throw new EdgeError('SERVER_SUPERSEDED', `epoch ${epoch} was stopped while its server started`);
    }
    const door = new FrontDoor({
      listen: { host: this.o.address, port: LAB_API_PORT },
      upstream: { host: '127.0.0.1', port: LAB_UPSTREAM_PORT },
      leaseExpiresAt: () => (this.fence ? this.fence(epoch) : Infinity),
      onClosed: (at) =>
        this.o.log.warn(
          { epoch, fenceClosedAt: wallClock(at) },
          `${this.o.nodeId}'s front door closed: its lease for epoch ${epoch} ran out`,
        ),
    });
    try {
      await door.start();
    } catch (e) {
      await handle.stop({ fast: true });
      throw e;
    }
    this.server.handle = handle;
    this.server.door = door;
    this.coldStartMs = Math.round(handle.coldStartMs);
    void handle.exited.then((which) => {
      if (this.server?.handle === handle)
        this.o.log.error({ epoch }, `${which} of epoch ${epoch} exited on its own`);
    });
    const real = this.o.realNode;
    if (real) {
      // Controllers first (a real site schedules and evicts), then the robot's own node joins, in
      // the background: the server serves whether or not its own kubelet has reported yet.
      const access = { url: this.url(this.o.address), caPem: handle.caPem, adminToken: handle.adminToken };
      await real.startControlPlane(access, dir);
      if (this.server?.epoch !== epoch) {
        await real.stopControlPlane();
        throw new EdgeError('SERVER_SUPERSEDED', `epoch ${epoch} was stopped while its server started`);
      }
      void real
        .join(access)
        .then(() => this.o.log.info({ epoch }, `${this.o.nodeId}'s real node is Ready on its own server`))
        .catch((e: Error) =>
          this.o.log.warn(
            { epoch, err: e.message },
            `${this.o.nodeId}'s real node did not join its own server`,
          ),
        );
      this.writeAdminKubeconfig(handle);
      this.server.state = 'serving';
      this.startSteps = steps(performance.now());
      this.o.log.info(
        { epoch, coldStartMs: this.coldStartMs, steps: this.startSteps },
        `${this.o.nodeId} serves epoch ${epoch} at ${this.url(this.o.address)}`,
      );
      return;
    }
    // The leader is a node of its own cluster too, like k3s server's embedded agent.
    const kubelet = new LabKubelet({
      nodeName: this.o.nodeId,
      address: this.o.address,
      server: this.url(this.o.address),
      caPem: handle.caPem,
      token: this.nodeToken(),
      labels: { ...this.o.labels, 'node-role.edgectl.io/server': 'true' },
      renewIntervalMs: this.o.kubeletRenewMs,
    });
    await kubelet.register();
    if (this.server?.epoch !== epoch) {
      kubelet.stop();
      throw new EdgeError('SERVER_SUPERSEDED', `epoch ${epoch} was stopped while its server started`);
    }
    this.selfKubelet = kubelet;
    this.writeAdminKubeconfig(handle);
    this.server.state = 'serving';
    this.startSteps = steps(performance.now());
    this.o.log.info(
      { epoch, coldStartMs: this.coldStartMs, steps: this.startSteps },
      `${this.o.nodeId} serves epoch ${epoch} at ${this.url(this.o.address)}`,
    );
  }

  /** Like k3s's /etc/rancher/k3s/k3s.yaml: the leader's admin kubeconfig, 0600, for bootstrap to read. */
  private writeAdminKubeconfig(handle: ApiServerHandle): void {
    const doc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'edgectl-lab',
          cluster: {
            server: this.url(this.o.address),
            'certificate-authority-data': Buffer.from(handle.caPem).toString('base64'),
          },
        },
      ],
      users: [{ name: 'admin', user: { token: handle.adminToken } }],
      contexts: [{ name: 'edgectl-lab', context: { cluster: 'edgectl-lab', user: 'admin' } }],
      'current-context': 'edgectl-lab',
    };
    const path = join(this.o.stateDir, 'lab-cp', 'admin.kubeconfig');
    writeFileSync(`${path}.tmp`, JSON.stringify(doc, null, 2), { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
  }

  private nodeToken(): string {
    return nodeTokenOf(this.o.identity, this.o.nodeId);
  }

  private pruneOldEpochs(current: number): void {
    const root = join(this.o.stateDir, 'lab-cp');
    let names: string[];
    try {
      names = readdirSync(root);
    } catch {
      return; // no epoch has run here yet
    }
    for (const n of names) {
      const e = Number(/^epoch-(\d+)$/.exec(n)?.[1]);
      if (Number.isFinite(e) && e < current - 1) rmSync(join(root, n), { recursive: true, force: true });
    }
  }

  async stopServer(epoch: number): Promise<void> {
    const s = this.server;
    if (!s || s.epoch > epoch) return;
    this.server = null;
    this.selfKubelet?.stop();
    this.selfKubelet = null;
    await this.o.realNode?.stopControlPlane();
    // The door first (it is what others reach), then SIGKILL: a fenced server must not drain.
    const closedAt = s.door?.closedAt() ?? null;
    await s.door?.stop();
    await s.handle?.stop({ fast: true });
    this.o.log.warn(
      { epoch: s.epoch, fenceClosedAt: closedAt === null ? undefined : wallClock(closedAt) },
      `${this.o.nodeId} stopped its server of epoch ${s.epoch}`,
    );
  }

  /**
   * siteServer: this robot's kube-apiserver for `epoch`, through its front door, with the site's
   * admin token: the agent's LeaderSite writes the site and acts on node loss through it.
   */
  async siteServer(epoch: number): Promise<ObjectClient> {
    const s = this.server;
    if (s?.epoch !== epoch || s.state !== 'serving' || !s.handle)
      throw new EdgeError('NO_SERVER', `no serving server of epoch ${epoch} on ${this.o.nodeId}`);
    // The agent's own module, with the client imported statically: a lab robot installed by
    // bootstrap runs the bundled agent, which has no node_modules to require the client from.
    const { kubeObjectClientFor } = await import('../../agent/site/kube-site.ts');
    return kubeObjectClientFor(this.url(this.o.address), s.handle.caPem, s.handle.adminToken);
  }

  async joinAsWorker(leader: LeaderEndpoint, epoch: number): Promise<void> {
    if (this.o.realNode) return this.joinRealNode(this.o.realNode, leader, epoch);
    this.worker?.kubelet?.stop();
    const kubelet = new LabKubelet({
      nodeName: this.o.nodeId,
      address: this.o.address,
      server: this.url(leader.host),
      caPem: this.o.identity.caCert ? await readCa(this.o.identity.caCert) : '',
      token: this.nodeToken(),
      labels: this.o.labels,
      renewIntervalMs: this.o.kubeletRenewMs,
    });
    const w = {
      leader: leader.id,
      epoch,
      state: 'joining' as 'joining' | 'ready',
      server: kubelet.server,
      kubelet,
    };
    this.worker = w;
    try {
      await kubelet.register();
    } catch (e) {
      kubelet.stop();
      if (this.worker === w) this.worker = null;
      throw e;
    }
    if (this.worker !== w) {
      kubelet.stop();
      throw new EdgeError('JOIN_SUPERSEDED', `the join to ${leader.id} (epoch ${epoch}) was replaced`);
    }
    w.state = 'ready';
    this.o.log.info({ epoch, leader: leader.id }, `${this.o.nodeId} is Ready on ${leader.id}'s server`);
  }

  /**
   * joinRealNode re-points the robot's real node at the leader's server, as a k3s agent re-joins:
   * containerd and the pods keep running, kubelet restarts with the new server.
   */
  private async joinRealNode(real: RealRobotNode, leader: LeaderEndpoint, epoch: number): Promise<void> {
    const w = {
      leader: leader.id,
      epoch,
      state: 'joining' as 'joining' | 'ready',
      server: this.url(leader.host),
      kubelet: null,
    };
    this.worker = w;
    try {
      await real.join({
        url: this.url(leader.host),
        caPem: await readCa(this.o.identity.caCert),
        adminToken: this.o.identity.adminToken,
      });
    } catch (e) {
      if (this.worker === w) this.worker = null;
      throw e;
    }
    if (this.worker !== w)
      throw new EdgeError('JOIN_SUPERSEDED', `the join to ${leader.id} (epoch ${epoch}) was replaced`);
    w.state = 'ready';
    this.o.log.info(
      { epoch, leader: leader.id },
      `${this.o.nodeId}'s real node is Ready on ${leader.id}'s server`,
    );
  }

  async resetWorker(): Promise<void> {
    this.worker?.kubelet?.stop();
    this.worker = null;
  }

  /**
   * followReplica: a voter following `leader` in `epoch` keeps a learner of the leader's etcd
   * running, from an empty data dir for each epoch; an old leader's own divergent writes are never
   * a replica. The previous epoch's replica is stopped and held (not deleted) until the new one
   * has joined: the new leader may have won on its site log alone and hand leadership to this
   * robot, which then takes over from the held replica.
   */
  async followReplica(leader: LeaderEndpoint, epoch: number): Promise<void> {
    const rep = this.o.replication;
    if (!rep || this.server) return;
    if (this.replica?.epoch === epoch) return;
    const previous = this.replica;
    if (previous) {
      await previous.stop({ graceful: true });
      const p = previous.position();
      const h = this.held?.position() ?? null;
      if (p && (!h || compareReplica(p, h) > 0)) {
        await this.held?.discard();
        this.held = previous;
      } else await previous.discard();
    }
    this.replica = new EtcdReplica({
      self: this.o.nodeId,
      epoch,
      leader: { id: leader.id, peerUrl: etcdPeerUrl(leader.host, ETCD_PEER_PORT) },
      selfPeerUrl: etcdPeerUrl(this.o.address, ETCD_PEER_PORT),
      tls: rep.tls,
      dir: join(this.o.stateDir, 'lab-cp', `replica-epoch-${epoch}`),
      clientPort: ETCD_CLIENT_PORT,
      log: this.o.log,
    });
    this.replica.start();
  }

  /**
   * syncReplicas: the leader makes its etcd's learners the first live voters of `voters` (in the
   * order given), within the learner limit.
   */
  async syncReplicas(epoch: number, voters: readonly LeaderEndpoint[]): Promise<void> {
    const rep = this.o.replication;
    if (!rep) return;
    const s = this.serving();
    if (s.epoch !== epoch) return;
    const members = await listMembers(s.handle.etcdEndpoint);
    const changes = standbyPlan({
      self: this.o.nodeId,
      selfPeerUrl: etcdPeerUrl(this.o.address, ETCD_PEER_PORT),
      members,
      candidates: voters.map((v) => ({ id: v.id, peerUrl: etcdPeerUrl(v.host, ETCD_PEER_PORT) })),
      maxLearners: rep.maxLearners,
    });
    const learners = members.filter(
      (m) => m.learner && !changes.some((c) => c.kind === 'remove' && c.id === m.id),
    );
    const byUrl = new Map(voters.map((v) => [etcdPeerUrl(v.host, ETCD_PEER_PORT), v.id]));
    this.standbyNode =
      changes.find((c) => c.kind === 'addLearner')?.node ??
      learners.flatMap((m) => m.peerUrls.flatMap((u) => byUrl.get(u) ?? []))[0] ??
      null;
    for (const c of changes) {
      await applyMemberChange(s.handle.etcdEndpoint, c);
      this.o.log.info(
        { epoch, change: c },
        c.kind === 'addLearner'
          ? `${this.o.nodeId} adds ${c.node} as a replica (etcd learner) of epoch ${epoch}`
          : `${this.o.nodeId} removes etcd member ${c.id}: ${c.reason}`,
      );
    }
  }

  /** The freshest of this epoch's replica and the held one: the one a takeover would use. */
  private freshestReplica(): EtcdReplica | null {
    const a = this.replica?.position() ? this.replica : null;
    const b = this.held?.position() ? this.held : null;
    if (!a || !b) return a ?? b;
    return compareReplica(a.position()!, b.position()!) >= 0 ? a : b;
  }

  /** The replica this robot holds (none while it serves). */
  replicaPosition(): ReplicaPosition | null {
    // The new epoch's replica has joined: the held one is no longer needed.
    if (this.held && this.replica?.position()) {
      void this.held.discard();
      this.held = null;
    }
    return this.freshestReplica()?.position() ?? null;
  }

  standby(): string | null {
    return this.server ? this.standbyNode : null;
  }

  status(): ControlPlaneStatus {
    return {
      server: this.server ? { epoch: this.server.epoch, state: this.server.state } : null,
      worker: this.worker
        ? { leader: this.worker.leader, epoch: this.worker.epoch, state: this.worker.state }
        : null,
      details: {
        apiServer: this.server?.handle?.url ?? this.worker?.server ?? null,
        apiServerColdStartMs: this.coldStartMs,
        restoredFrom: this.restoredFrom,
        snapshotsTaken: this.snapshotsTaken,
        newestSnapshot: this.o.snapshots?.store.newest()?.name ?? null,
        replica:
          this.replica || this.held ? describeReplica(this.freshestReplica()?.position() ?? null) : null,
        standby: this.standby(),
        restoredFromReplica: this.restoredFromReplica ? describeReplica(this.restoredFromReplica) : null,
        revisionBump:
          this.server && this.revisionBump ? `${this.revisionBump.from}->${this.revisionBump.to}` : null,
        ...startStepDetails(this.server ? this.startSteps : null),
      },
    };
  }

  private serving(): { epoch: number; handle: ApiServerHandle } {
    const s = this.server;
    if (s?.state !== 'serving' || !s.handle)
      throw new EdgeError('NO_SERVER', 'this robot serves no control plane now');
    return { epoch: s.epoch, handle: s.handle };
  }

  async snapshot(epoch: number): Promise<SnapshotRecord> {
    const store = this.o.snapshots?.store;
    if (!store) throw new EdgeError('NO_SNAPSHOTS', 'snapshots are not configured for this robot');
    const s = this.serving();
    if (s.epoch !== epoch) throw new EdgeError('NO_SERVER', `no serving server of epoch ${epoch}`);
    const tmp = join(store.dir, `taking-${epoch}.db`);
    await s.handle.snapshot(tmp);
    const plain = readFileSync(tmp);
    rmSync(tmp, { force: true });
    const createdAt = new Date().toISOString();
    const record: SnapshotRecord = {
      name: `e${epoch}-${createdAt.replace(/[-:.]/g, '')}-${this.o.nodeId}`,
      epoch,
      from: this.o.nodeId,
      sha256: createHash('sha256').update(plain).digest('hex'),
      size: plain.length,
      createdAt,
    };
    store.save(record, plain, this.siteView?.committedSnapshots() ?? []);
    this.snapshotsTaken++;
    return record;
  }

  async shipSnapshot(name: string, to: readonly LeaderEndpoint[]): Promise<string[]> {
    const snaps = this.o.snapshots;
    if (!snaps) return [];
    const record = snaps.store.records().find((r) => r.name === name);
    if (!record) throw new EdgeError('NO_SNAPSHOT', `no snapshot ${name} here`);
    const term = this.siteView?.leadership().term;
    if (term === undefined) return [];
    const content = readFileSync(snaps.store.path(record));
    const outcomes = await Promise.all(
      to.map((p) => pushSnapshot({ self: this.o.nodeId, term, to: p, record, content, keys: snaps.keys })),
    );
    for (const o of outcomes)
      if (!o.kept)
        this.o.log.warn(
          { snapshot: name, peer: o.to, status: o.status },
          `${this.o.nodeId} could not push snapshot ${name} to ${o.to}: ${o.reason}`,
        );
    return outcomes.filter((o) => o.kept).map((o) => o.to);
  }

  setSiteView(view: SiteView): void {
    this.siteView = view;
    this.o.snapshots?.receiver?.setSiteView(view);
  }

  snapshotPushes(): Readonly<Record<string, number>> {
    return this.o.snapshots?.receiver?.stats() ?? {};
  }

  setFence(leaseExpiresAt: (epoch: number) => number | null): void {
    this.fence = leaseExpiresAt;
  }

  async close(): Promise<void> {
    await this.resetWorker();
    await this.replica?.stop({ graceful: true });
    await this.held?.stop({ graceful: true });
    if (this.server) await this.stopServer(this.server.epoch);
    await this.o.realNode?.close();
    await this.o.snapshots?.receiver?.close();
  }
}

/** The steps of an epoch's start, ms; null: the step did not run (nothing was restored). */
export interface StartSteps {
  /** The replicas' learners stopped (graceful: the bbolt file holds every applied entry). */
  readonly stopReplicasMs: number;
  /** The replica's bbolt file or the snapshot restored into the epoch's data dir. */
  readonly restoreMs: number | null;
  /** The restored revision moved forward (inside the restore-to-etcd part of startApiServer). */
  readonly bumpMs: number | null;
  /** kube-apiserver's process start to /readyz ok (etcd starts beside it). */
  readonly apiServerColdStartMs: number;
  /** Restore, bump, etcd and kube-apiserver until ready. */
  readonly startApiServerMs: number;
  readonly discardReplicasMs: number;
  /** Front door, the leader's own node registered, admin kubeconfig. */
  readonly registerMs: number;
  /** startServer called to serving. */
  readonly totalMs: number;
}

/** startStepDetails: the steps as flat status details (`start.<step>`), rounded to ms. */
export function startStepDetails(s: StartSteps | null): Record<string, number | null> {
  if (!s) return {};
  return Object.fromEntries(
    Object.entries(s).map(([k, v]) => [`start.${k}`, v === null ? null : Math.round(v as number)]),
  );
}

async function readCa(path: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return readFile(path, 'utf8');
}

/** makeLabControlPlane builds the lab runtime from the agent config's controlPlane section. */
export async function makeLabControlPlane(o: {
  nodeId: string;
  siteId: string;
  stateDir: string;
  labels: Readonly<Record<string, string>>;
  controlPlane: Readonly<Record<string, unknown>>;
  log: Logger;
  /** The snapshot keys this voter shares with each other voter (Keyring.snapshotKeysFor). */
  snapshotKeysFor?: (peer: string) => readonly Buffer[];
  serverCapable?: boolean;
  /** The server-capable robots (the voters): the only ones that push and receive snapshots. */
  servers?: readonly string[];
}): Promise<LabControlPlane> {
  const { z } = await import('zod');
  const { ConfigError } = await import('../../agent/errors.ts');
  const { loadApiServerIdentity } = await import('../kube-apiserver/apiserver.ts');
  const schema = z.object({
    runtime: z.literal('lab'),
    /** The site identity `edgectl lab up` made (CA, serving certificate, tokens). */
    identityDir: z.string().min(1),
    /** The robot's address on the lab bridge; its API server listens there. */
    address: z.string().regex(/^\d+\.\d+\.\d+\.\d+$/, 'must be an IPv4 address'),
    kubeletRenewMs: z.number().int().positive().optional(),
    /**
     * The installed site spec (agent/site/spec.ts) and the addon templates (CRDs, Multus,
     * Whereabouts; default: the repository's templates/): the agent's LeaderSite reads them
     * (agent/run.ts), not this runtime.
     */
    siteSpecFile: z.string().min(1).optional(),
    templatesDir: z.string().min(1).optional(),
    /** A real node instead of the lab kubelet (`lab up --node real`): see lab/runtime/real-robot-node.ts. */
    node: z
      .object({
        kind: z.literal('real'),
        netns: z.string().min(1),
        bundle: z.string().min(1),
        podCidr: z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, 'must be an IPv4 CIDR'),
        dir: z.string().min(1),
        cgroupPrefix: z.string().min(1),
        hostMountPid: z.number().int().positive(),
        nodeMonitorGraceSeconds: z.number().int().positive().optional(),
      })
      .strict()
      .optional(),
    /**
     * This voter's etcd peer certificate (peer-ca.crt, peer.crt, peer.key; lab up writes it for
     * voters only): with it the voter replicates the leader's etcd (docs/k3s.md "Replication").
     */
    etcdPeerDir: z.string().min(1).optional(),
    /** Learners the leader's etcd takes: 1 with etcd 3.4 (docs/k3s.md "Replication"). */
    replicas: z.number().int().min(0).max(6).optional(),
  });
  const r = schema.safeParse(o.controlPlane);
  if (!r.success)
    throw new ConfigError(
      'controlPlane (lab runtime)',
      r.error.issues.map((i) => `controlPlane.${i.path.join('.')}: ${i.message}`),
      { hint: 'edgectl lab up writes these fields; see docs/lab.md' },
    );
  // Every server-capable robot keeps the snapshots the leader pushes, to restore when it leads.
  const sharing = await startSnapshotSharing({
    self: o.nodeId,
    address: r.data.address,
    keysFor: o.snapshotKeysFor,
    serverCapable: o.serverCapable ?? false,
    store: () => new SnapshotStore(join(o.stateDir, 'snapshots')),
    log: o.log,
  });
  const snapshots: LabControlPlaneOptions['snapshots'] = sharing?.store
    ? { store: sharing.store, keys: sharing.keys, receiver: sharing.receiver }
    : undefined;
  const identity = loadApiServerIdentity(r.data.identityDir);
  let realNode: RealRobotNode | undefined;
  if (r.data.node) {
    const { RealRobotNode: Real } = await import('./real-robot-node.ts');
    realNode = new Real({
      nodeId: o.nodeId,
      address: r.data.address,
      identity,
      labels: o.labels,
      config: r.data.node,
      log: o.log,
    });
  }
  return new LabControlPlane({
    realNode,
    snapshots,
    nodeId: o.nodeId,
    siteId: o.siteId,
    address: r.data.address,
    identity,
    stateDir: o.stateDir,
    log: o.log,
    labels: o.labels,
    kubeletRenewMs: r.data.kubeletRenewMs,
    replication:
      r.data.etcdPeerDir && o.serverCapable && (r.data.replicas ?? 1) > 0
        ? { tls: etcdPeerTlsIn(r.data.etcdPeerDir), maxLearners: r.data.replicas ?? 1 }
        : undefined,
  });
}
