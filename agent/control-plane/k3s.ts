/**
 * K3sControlPlane: the ControlPlaneRuntime of a real robot. It runs the k3s plans
 * (agent/k3s/plans.ts) through a CommandRunner on the robot itself and waits for readiness through
 * injectable probes (agent/k3s/robot-io.ts). Decisions are the plans' and snapshots.ts's; this class
 * sequences them, keeps the status, and makes a demotion win over a start in flight.
 *
 *   startServer(epoch)   start the epoch's datastore (chooseDatastoreSource: its replica, its own
 *                        older datastore, a snapshot or empty; takeoverPlan), run
 *                        startServerPlan, wait for /readyz, then forget the Nodes of robots gone
 *   followReplica        a follower voter: a learner of the leader's etcd (replicaStartPlan)
 *   syncReplicas         the leader: its etcd's learner on the first live voter (standbyChangePlan)
 *   replicaPosition      the replica held, its revision read with etcdctl (at most every replicaPollMs)
 *   stopServer(epoch)    stopServerPlan at once, even if a start is still running (that start stops
 *                        at its next step), and again once that start has given up
 *   siteServer(epoch)    the k3s server's API (admin kubeconfig), while it serves that epoch: the
 *                        agent's LeaderSite applies the site and acts on node loss through it; one
 *                        client per epoch, closed when that server stops or the runtime closes
 *   joinAsWorker         joinWorkerPlan, then wait until this Node is Ready on the leader
 *   resetWorker          resetWorkerPlan
 *   takeSnapshot         (not in ControlPlaneRuntime) the leader's snapshot, as a site-log record
 *
 * Tested with the robot model and fake probes (k3s.test.ts, and the shared runtime contract);
 * never against a real k3s (docs/k3s.md, "What was verified").
 */
import { EdgeError } from '../errors.ts';
import type { CommandRunner } from '../exec/runner.ts';
import { executePlan } from '../k3s/execute.ts';
import { DATASTORE_UNIT, EDGECTL_ETCD_DIR, K3S_BIN, LOCAL_SNAPSHOT_DIR } from '../k3s/paths.ts';
import {
  abandonReplicaPlan,
  chooseDatastoreSource,
  takeoverPlan,
  discardPlan,
  etcdctl,
  parseEndpointRevision,
  parseEtcdDirs,
  parseMemberList,
  replicaDir,
  replicaDb,
  replicaStartPlan,
  standbyChangePlan,
  type DatastoreSource,
} from '../k3s/replica-plans.ts';
import {
  compareReplica,
  describeReplica,
  etcdPeerUrl,
  standbyPlan,
  type ReplicaPosition,
} from './replica.ts';
import {
  forgetNodesPlan,
  joinWorkerPlan,
  resetWorkerPlan,
  snapshotSavePlan,
  startServerPlan,
  stopServerPlan,
} from '../k3s/plans.ts';
import { fileFacts, heldSnapshots, runnerProbes, type K3sProbes } from '../k3s/robot-io.ts';
import type { K3sNodeSpec } from '../k3s/settings.ts';
import { newestVerified, snapshotName, type HeldSnapshot, type SnapshotRecord } from '../k3s/snapshots.ts';
import type {
  ControlPlaneRuntime,
  ControlPlaneStatus,
  LeaderEndpoint,
  SiteView,
  SnapshotRecord as RuntimeSnapshotRecord,
} from './runtime.ts';
import { pushSnapshot, type SnapshotKeys, type SnapshotReceiver } from './snapshots.ts';
import type { ObjectClient } from '../site/object-client.ts';
import { isoTime, wallClockMs } from '../wall-clock.ts';
import { monotonicMs } from '../clock.ts';

/** Where the snapshot records and files come from when a new leader chooses how to start. */
export interface SnapshotSource {
  /** The snapshot records committed in the site log (SiteView.committedSnapshots). */
  records(): readonly SnapshotRecord[];
  /** The snapshot files this robot holds among `names`, checksummed (default: robot-io heldSnapshots). */
  held?(names: ReadonlySet<string>): Promise<readonly HeldSnapshot[]>;
}

export interface K3sControlPlaneOptions {
  readonly runner: CommandRunner;
  readonly node: K3sNodeSpec;
  /**
   * The k3s server's API on this robot (its admin kubeconfig), for siteServer: asked once per
   * serving epoch, and closed when that epoch's server stops or the runtime closes.
   */
  readonly apiServer: () => Promise<ObjectClient>;
  /** Default: runnerProbes (k3s kubectl through the runner). */
  readonly probes?: K3sProbes;
  /**
   * Default: the snapshot records committed in the site log (setSiteView); before the agent gives
   * its view, none, so a new leader resumes its own etcd or starts fresh.
   */
  readonly snapshots?: SnapshotSource;
  /** Every robot of the site; Nodes of others are deleted when a server starts. Default: none deleted. */
  readonly siteMembers?: () => readonly string[];
  /** Default 300 s: a restore on a robot's SD card is slow. */
  readonly serverReadyTimeoutMs?: number;
  /** Default 180 s. */
  readonly workerReadyTimeoutMs?: number;
  /** Default 2 s. */
  readonly pollMs?: number;
  /** Monotonic milliseconds for readiness deadlines (default monotonicMs, agent/clock.ts). */
  readonly now?: () => number;
  /**
   * Wall-clock milliseconds (default wallClockMs), only for times compared with other machines':
   * a Node's heartbeat on the API server and a snapshot's creation time.
   */
  readonly wallClock?: () => number;
  readonly delay?: (ms: number) => Promise<void>;
  /**
   * The secrets of snapshot pushes; with them, shipSnapshot sends this robot's snapshots to the
   * other voters' receivers (agent/control-plane/snapshots.ts).
   */
  readonly snapshotKeys?: SnapshotKeys;
  /** The receivers' port (default SNAPSHOT_PORT). */
  readonly snapshotPort?: number;
  /** This robot's receiver of the leader's snapshots: it learns the election's view from here. */
  readonly receiver?: SnapshotReceiver;
  /**
   * Continuous replication (docs/k3s.md "Replication"): how many learners the leader's etcd keeps
   * (etcd 3.4 allows one). Default 1 on a server-capable robot; 0 turns replication off (the
   * snapshots remain).
   */
  readonly maxLearners?: number;
  /**
   * The least time between two reads of the replica's revision (default REPLICA_POLL_MS). Each read
   * is an etcdctl process on the robot, with a TLS handshake.
   */
  readonly replicaPollMs?: number;
}

/** A replica this robot runs or holds: the leader's etcd of `epoch`, and the revision last read. */
interface HeldReplica {
  readonly epoch: number;
  readonly leader: string;
  revision: number;
}

/**
 * A replica holds data once its revision is past 1: a new etcd starts at revision 1 and a learner
 * stays there until the leader's snapshot reaches it, while any datastore k3s ran on is past it.
 */
const holdsData = (r: HeldReplica | null): r is HeldReplica => r !== null && r.revision > 1;

/**
 * How often a standby reads its replica's revision. The revision orders two voters that hold
 * replicas of the same epoch when the leader is gone; a figure a few seconds old can mislead that
 * only if the standby changed in those seconds, and a new leader whose replica is older than a
 * live voter's hands leadership over anyway. A read every second cost a standby more than a
 * percent of a core in etcdctl processes (docs/k3s.md).
 */
const REPLICA_POLL_MS = 5_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class K3sControlPlane implements ControlPlaneRuntime {
  readonly kind = 'k3s';
  private readonly runner: CommandRunner;
  private readonly spec: K3sNodeSpec;
  private readonly apiServer: () => Promise<ObjectClient>;
  private readonly probes: K3sProbes;
  private readonly snapshots: SnapshotSource | undefined;
  private readonly siteMembers: (() => readonly string[]) | undefined;
  private readonly serverReadyTimeoutMs: number;
  private readonly workerReadyTimeoutMs: number;
  private readonly pollMs: number;
  private readonly now: () => number;
  private readonly wallClock: () => number;
  private readonly delay: (ms: number) => Promise<void>;

  private server: ControlPlaneStatus['server'] = null;
  private worker: ControlPlaneStatus['worker'] = null;
  private lastStart: string | null = null;
  /** Bumped by every server operation: an older one still running sees it and stops. */
  private serverOp = 0;
  private workerOp = 0;
  private startInFlight: Promise<void> | null = null;
  private closed = false;
  private readonly snapshotKeys: SnapshotKeys | undefined;
  private readonly receiver: SnapshotReceiver | undefined;
  private readonly snapshotPort: number | undefined;
  private siteView: SiteView | null = null;
  /** The API client siteServer handed out, and the epoch it is for. */
  private api: { readonly epoch: number; readonly client: Promise<ObjectClient> } | null = null;
  /** Snapshots this robot took while it led (their files are in LOCAL_SNAPSHOT_DIR). */
  private readonly taken: SnapshotRecord[] = [];
  private readonly maxLearners: number;
  private readonly replicaPollMs: number;
  /** The replica of the current epoch (running), and the previous one kept until it has joined. */
  private replica: HeldReplica | null = null;
  private held: HeldReplica | null = null;
  private replicaPolledAt = -Infinity;
  private replicaPollFailures = 0;
  private replicaPoll: Promise<void> | null = null;
  private standbyNode: string | null = null;

  constructor(opts: K3sControlPlaneOptions) {
    this.runner = opts.runner;
    this.spec = opts.node;
    this.apiServer = opts.apiServer;
    this.probes = opts.probes ?? runnerProbes(opts.runner, opts.node.nodeName);
    this.snapshotKeys = opts.snapshotKeys;
    this.receiver = opts.receiver;
    this.snapshotPort = opts.snapshotPort;
    // Only snapshots the site log has committed may be restored: a record that never committed
    // (a push cut short by a leader change, or one no leader made) is never a starting point.
    // chooseDatastore then verifies each file against its committed record (newestVerified).
    this.snapshots = opts.snapshots ?? {
      records: () => (this.siteView?.committedSnapshots() ?? []).map(fromRuntimeRecord),
    };
    this.siteMembers = opts.siteMembers;
    this.serverReadyTimeoutMs = opts.serverReadyTimeoutMs ?? 300_000;
    this.workerReadyTimeoutMs = opts.workerReadyTimeoutMs ?? 180_000;
    this.pollMs = opts.pollMs ?? 2_000;
    this.now = opts.now ?? monotonicMs;
    this.wallClock = opts.wallClock ?? wallClockMs;
    this.delay = opts.delay ?? sleep;
    this.maxLearners = opts.node.serverCapable ? (opts.maxLearners ?? 1) : 0;
    this.replicaPollMs = opts.replicaPollMs ?? REPLICA_POLL_MS;
  }

  async startServer(epoch: number): Promise<void> {
    if (!this.spec.serverCapable) {
      throw new EdgeError(
        'NOT_SERVER_CAPABLE',
        `${this.spec.nodeName} is not server-capable and has no server identity`,
        {
          hint: 'set controlPlane.k3s.serverCapable and provision the server identity, or keep this robot a non-voter',
        },
      );
    }
    if (this.server && this.server.epoch !== epoch) {
      throw new EdgeError('SERVER_RUNNING', `a server of epoch ${this.server.epoch} still runs`, {
        hint: 'stop it first',
      });
    }
    const op = ++this.serverOp;
    this.server = { epoch, state: 'starting' };
    const run = this.runStart(op, epoch);
    this.startInFlight = run;
    try {
      await run;
    } finally {
      if (this.startInFlight === run) this.startInFlight = null;
    }
  }

  private async runStart(op: number, epoch: number): Promise<void> {
    const cancelled = () => op !== this.serverOp || this.closed;
    try {
      await this.replicaPoll;
      await this.startDatastore(epoch, cancelled);
      // The replicas are in the new datastore now, or discarded with the other epochs.
      this.replica = null;
      this.held = null;
      this.standbyNode = null;
      await executePlan(this.runner, startServerPlan(this.spec, epoch), { cancelled });
      await this.waitFor(
        `the k3s server of epoch ${epoch}`,
        () => this.probes.serverReady(),
        cancelled,
        this.serverReadyTimeoutMs,
      );
      await this.forgetGoneNodes(cancelled);
      if (!cancelled()) this.server = { epoch, state: 'serving' };
    } catch (err) {
      if (!cancelled()) this.server = null;
      throw err;
    }
  }

  /**
   * startDatastore: the epoch's datastore, from what chooseDatastore picks. A replica whose bbolt
   * file does not restore (a corrupt replica) is removed and the choice made again, so the snapshot
   * is the fallback; a failure after the restore (etcd does not start) is not the replica's fault
   * and fails the start without touching it.
   */
  private async startDatastore(epoch: number, cancelled: () => boolean): Promise<void> {
    const { source, reason } = await this.chooseDatastore(epoch);
    this.lastStart = `${source.kind}: ${reason}`;
    const self = { id: this.spec.nodeName, host: this.spec.nodeIp };
    const plan = takeoverPlan(self, epoch, source);
    const restored = plan.steps.findIndex((st) => st.id === 'restore') + 1;
    try {
      await executePlan(this.runner, { ...plan, steps: plan.steps.slice(0, restored) }, { cancelled });
    } catch (err) {
      if (source.kind !== 'replica' || cancelled()) throw err;
      await executePlan(this.runner, abandonReplicaPlan(self.id, epoch, source.epoch), { cancelled });
      if (this.replica?.epoch === source.epoch) this.replica = null;
      if (this.held?.epoch === source.epoch) this.held = null;
      const fallback = await this.chooseDatastore(epoch);
      this.lastStart = `${fallback.source.kind}: ${fallback.reason}, since the replica of epoch ${source.epoch} did not restore (${err instanceof Error ? err.message : String(err)})`;
      await executePlan(this.runner, takeoverPlan(self, epoch, fallback.source), { cancelled });
      return;
    }
    await executePlan(this.runner, { ...plan, steps: plan.steps.slice(restored) }, { cancelled });
  }

  /**
   * chooseDatastore: what this robot holds (its datastores and replicas, from the etcd directory;
   * the replicas' revisions where this process read them) and the newest committed snapshot it
   * holds, verified; chooseDatastoreSource decides.
   */
  private async chooseDatastore(epoch: number): Promise<{ source: DatastoreSource; reason: string }> {
    const listing = await this.runner.run(['ls', '-1', EDGECTL_ETCD_DIR]);
    const dirs = parseEtcdDirs(listing.code === 0 ? listing.stdout : '');
    // Only a replica this process saw apply something: etcd creates its data file before it learns
    // it is no member, so a replica dir alone (one that never joined, or one from before an agent
    // restart) says nothing about its content, and restoring it could start the site empty.
    const replicas: ReplicaPosition[] = [];
    for (const e of dirs.replicas) {
      const known = [this.replica, this.held].find((r) => r?.epoch === e) ?? null;
      if (!holdsData(known)) continue;
      if ((await this.runner.run(['test', '-e', replicaDb(e)])).code !== 0) continue;
      replicas.push({ epoch: e, revision: known.revision });
    }
    const records = this.snapshots?.records() ?? [];
    const names = new Set(records.map((r) => r.name));
    const held =
      records.length === 0
        ? []
        : await (this.snapshots?.held ? this.snapshots.held(names) : heldSnapshots(this.runner, names));
    const newest = newestVerified(records, held);
    return chooseDatastoreSource({
      epoch,
      datastores: dirs.datastores,
      replicas,
      snapshot: newest
        ? { epoch: newest.record.epoch, path: newest.file.path, sha256: newest.record.sha256 }
        : null,
    });
  }

  private async forgetGoneNodes(cancelled: () => boolean): Promise<void> {
    if (!this.siteMembers || cancelled()) return;
    const members = new Set(this.siteMembers());
    const r = await this.runner.run([K3S_BIN, 'kubectl', 'get', 'nodes', '-o', 'name']);
    if (r.code !== 0) {
      throw new EdgeError(
        'K3S_LIST_NODES_FAILED',
        `could not list Nodes on ${this.spec.nodeName}: ${r.stderr.trim()}`,
      );
    }
    const gone = r.stdout
      .split('\n')
      .map((l) => l.trim().replace(/^node\//, ''))
      .filter((n) => n && !members.has(n) && n !== this.spec.nodeName);
    if (gone.length > 0) await executePlan(this.runner, forgetNodesPlan(this.spec, gone), { cancelled });
  }

  async stopServer(epoch: number): Promise<void> {
    // A newer epoch's server is not this (late) call's to stop.
    if (this.server && this.server.epoch > epoch) return;
    ++this.serverOp;
    // A stopping server takes no more site writes: its client's calls in flight fail now.
    await this.dropApi();
    const inFlight = this.startInFlight;
    await executePlan(this.runner, stopServerPlan(this.spec, epoch));
    this.server = null;
    this.standbyNode = null;
    if (inFlight) {
      // The start stops at its next step; whatever its last step did, stop and fence again after it.
      await inFlight.catch(() => undefined);
      await executePlan(this.runner, stopServerPlan(this.spec, epoch));
    }
  }

  /** Only a serving server's API takes site writes: a demoted leader must not write to its own. */
  async siteServer(epoch: number): Promise<ObjectClient> {
    if (this.server?.epoch !== epoch || this.server.state !== 'serving')
      throw new EdgeError('NO_SERVER', `no serving k3s server of epoch ${epoch} on ${this.spec.nodeName}`);
    if (this.api?.epoch !== epoch) {
      void this.dropApi();
      const client = this.apiServer();
      this.api = { epoch, client };
      // One that could not be made is asked for again at the next call.
      client.catch(() => {
        if (this.api?.client === client) this.api = null;
      });
    }
    return this.api.client;
  }

  /** dropApi closes the API client siteServer handed out (ChildObjectClient ends its child process). */
  private async dropApi(): Promise<void> {
    const api = this.api;
    this.api = null;
    await api?.client.then(
      (c) => c.close?.(),
      () => undefined,
    );
  }

  async joinAsWorker(leader: LeaderEndpoint, epoch: number): Promise<void> {
    const op = ++this.workerOp;
    const cancelled = () => op !== this.workerOp || this.closed;
    // Compared with the Node's heartbeat time, which the API server stamps from its wall clock.
    const since = this.wallClock();
    this.worker = { leader: leader.id, epoch, state: 'joining' };
    try {
      await executePlan(this.runner, joinWorkerPlan(this.spec, leader, epoch), { cancelled });
      await this.waitFor(
        `${this.spec.nodeName} to be Ready on ${leader.id}`,
        () => this.probes.workerReady(leader, since),
        cancelled,
        this.workerReadyTimeoutMs,
      );
      if (!cancelled()) this.worker = { leader: leader.id, epoch, state: 'ready' };
    } catch (err) {
      if (!cancelled()) this.worker = null;
      throw err;
    }
  }

  async resetWorker(): Promise<void> {
    ++this.workerOp;
    await executePlan(this.runner, resetWorkerPlan(this.spec));
    this.worker = null;
  }

  /**
   * takeSnapshot: the leader saves an etcd snapshot and returns its record, for the agent to append
   * to the site log (kind `snapshot`, snapshot-record.ts encodeLogRecord) and ship.
   */
  async takeSnapshot(term: number): Promise<SnapshotRecord> {
    const server = this.server;
    if (server?.state !== 'serving') {
      throw new EdgeError('NO_SERVER', `no serving k3s server on ${this.spec.nodeName} to snapshot`);
    }
    const createdAt = this.wallClock();
    // Named as k3s named its own snapshots (<name>-<node>-<unix seconds>): snapshots.ts reads it so.
    const file = `${snapshotName(this.spec.site, server.epoch, term)}-${this.spec.nodeName}-${Math.floor(createdAt / 1000)}`;
    await executePlan(this.runner, snapshotSavePlan(this.spec, `${LOCAL_SNAPSHOT_DIR}/${file}`));
    const facts = await fileFacts(this.runner, `${LOCAL_SNAPSHOT_DIR}/${file}`);
    if (!facts) {
      throw new EdgeError(
        'K3S_SNAPSHOT_MISSING',
        `etcdctl reported snapshot ${file} saved, but no such file is in ${LOCAL_SNAPSHOT_DIR}`,
        { hint: `check that ${LOCAL_SNAPSHOT_DIR} exists on ${this.spec.nodeName} (installPlan makes it)` },
      );
    }
    return { v: 1, name: file, node: this.spec.nodeName, epoch: server.epoch, term, ...facts, createdAt };
  }

  /** The agent's snapshot hook: take one (etcdctl snapshot save) and keep its record. */
  async snapshot(epoch: number): Promise<RuntimeSnapshotRecord> {
    const r = await this.takeSnapshot(epoch);
    this.taken.push(r);
    return toRuntimeRecord(r);
  }

  /** Push a snapshot this robot took to other voters, sealed for each; resolves those that kept it. */
  async shipSnapshot(name: string, to: readonly LeaderEndpoint[]): Promise<string[]> {
    const r = this.taken.find((t) => t.name === name);
    const term = this.siteView?.leadership().term;
    if (!r || !this.snapshotKeys || term === undefined) return [];
    const content = await this.runner.readFile(`${LOCAL_SNAPSHOT_DIR}/${name}`, { sudo: true });
    if (!content)
      throw new EdgeError('K3S_SNAPSHOT_MISSING', `snapshot ${name} is gone from ${LOCAL_SNAPSHOT_DIR}`);
    const record = toRuntimeRecord(r);
    const keys = this.snapshotKeys;
    // One voter at a time: each push seals in a child process of its own (snapshot-cipher.ts), and
    // the agent's unit bounds the memory of the agent and its children together (MemoryMax).
    const outcomes = [];
    for (const p of to)
      outcomes.push(
        await pushSnapshot({
          self: this.spec.nodeName,
          term,
          to: p,
          record,
          content,
          keys,
          port: this.snapshotPort,
        }),
      );
    return outcomes.filter((o) => o.kept).map((o) => o.to);
  }

  /**
   * followReplica: this voter, a follower of `leader` in `epoch`, runs a learner of the leader's
   * etcd from an empty data dir. The previous epoch's replica is stopped and held (not deleted)
   * until the new one holds as much: the new leader may have won on its site log alone and
   * hand leadership to this robot, which then takes over from the held one. Until the leader adds
   * this member, etcd exits and systemd restarts it.
   */
  async followReplica(leader: LeaderEndpoint, epoch: number): Promise<void> {
    if (this.maxLearners === 0 || this.server || this.replica?.epoch === epoch) return;
    const previous = this.replica;
    if (holdsData(previous) && (!this.held || compareReplica(previous, this.held) > 0)) this.held = previous;
    this.replica = { epoch, leader: leader.id, revision: 0 };
    this.replicaPollFailures = 0;
    const self = { id: this.spec.nodeName, host: this.spec.nodeIp };
    try {
      await executePlan(this.runner, replicaStartPlan(self, leader, epoch, this.held?.epoch));
    } catch (err) {
      if (this.replica?.epoch === epoch) this.replica = null;
      throw err;
    }
  }

  /**
   * syncReplicas: the leader's etcd keeps its learners on the first live voters of `voters`, within
   * maxLearners; a learner of a voter no longer live is removed. Writes never wait for them.
   */
  async syncReplicas(epoch: number, voters: readonly LeaderEndpoint[]): Promise<void> {
    if (this.maxLearners === 0 || this.server?.epoch !== epoch || this.server.state !== 'serving') return;
    const r = await this.runner.run(etcdctl('member', 'list', '-w', 'json', '--hex'), { timeoutMs: 10_000 });
    const members = r.code === 0 ? parseMemberList(r.stdout) : null;
    if (!members)
      throw new EdgeError(
        'ETCD_MEMBER_LIST_FAILED',
        `could not list the datastore's members: ${r.stderr.trim()}`,
        {
          hint: `see \`journalctl -u ${DATASTORE_UNIT}\` on ${this.spec.nodeName}`,
        },
      );
    const changes = standbyPlan({
      self: this.spec.nodeName,
      selfPeerUrl: etcdPeerUrl(this.spec.nodeIp),
      members,
      candidates: voters.map((v) => ({ id: v.id, peerUrl: etcdPeerUrl(v.host) })),
      maxLearners: this.maxLearners,
    });
    const byUrl = new Map(voters.map((v) => [etcdPeerUrl(v.host), v.id]));
    const kept = members.filter(
      (m) => m.learner && !changes.some((c) => c.kind === 'remove' && c.id === m.id),
    );
    await executePlan(this.runner, standbyChangePlan(this.spec.nodeName, changes));
    if (this.server?.epoch === epoch)
      this.standbyNode =
        changes.find((c) => c.kind === 'addLearner')?.node ??
        kept.flatMap((m) => m.peerUrls.flatMap((u) => byUrl.get(u) ?? []))[0] ??
        null;
  }

  /**
   * replicaPosition: the freshest replica this robot holds. The revision is read from the running
   * learner (etcdctl endpoint status) in the background, at most every replicaPollMs; the agent
   * asks often and gets the last value read. While the learner does not answer (a voter that is
   * not the standby runs one that is no member), the reads back off to 16 times that: each is a
   * process start on the robot.
   */
  replicaPosition(): ReplicaPosition | null {
    if (
      this.replica &&
      !this.server &&
      !this.replicaPoll &&
      this.now() - this.replicaPolledAt >= this.replicaPollMs * 2 ** Math.min(this.replicaPollFailures, 4)
    ) {
      this.replicaPolledAt = this.now();
      this.replicaPoll = this.pollReplica().finally(() => (this.replicaPoll = null));
    }
    const best = [this.replica, this.held].filter(holdsData).sort(compareReplica).at(-1);
    return best ? { epoch: best.epoch, revision: best.revision } : null;
  }

  private async pollReplica(): Promise<void> {
    const replica = this.replica;
    if (!replica) return;
    const r = await this.runner
      .run(etcdctl('endpoint', 'status', '-w', 'json'), { timeoutMs: 2_000 })
      .catch(() => null);
    const rev = r?.code === 0 ? parseEndpointRevision(r.stdout) : null;
    this.replicaPollFailures = rev === null ? this.replicaPollFailures + 1 : 0;
    if (rev === null || this.replica !== replica) return;
    replica.revision = Math.max(replica.revision, rev);
    // The new epoch's replica holds at least what the held one did (a takeover moves the revision
    // far forward; a leader that carried its own datastore on keeps it): the held one can go.
    if (this.held && holdsData(replica) && replica.revision >= this.held.revision) {
      this.held = null;
      await executePlan(this.runner, discardPlan(this.spec.nodeName, [replicaDir(replica.epoch)])).catch(
        () => undefined,
      );
    }
  }

  /** While this robot serves, the voter that holds its standby replica, or null. */
  standby(): string | null {
    return this.server ? this.standbyNode : null;
  }

  setSiteView(view: SiteView): void {
    this.siteView = view;
    this.receiver?.setSiteView(view);
  }

  snapshotPushes(): Readonly<Record<string, number>> {
    return this.receiver?.stats() ?? {};
  }

  status(): ControlPlaneStatus {
    return {
      server: this.server,
      worker: this.worker,
      details: {
        node: this.spec.nodeName,
        serverStart: this.lastStart,
        replica: this.replica || this.held ? describeReplica(this.replicaPosition()) : null,
        standby: this.standby(),
      },
    };
  }

  /** close stops waiting; it leaves k3s as it is (the units are PartOf the agent's unit). */
  async close(): Promise<void> {
    this.closed = true;
    await this.dropApi();
    await this.receiver?.close();
  }

  private async waitFor(
    what: string,
    probe: () => Promise<boolean>,
    cancelled: () => boolean,
    timeoutMs: number,
  ): Promise<void> {
    const deadline = this.now() + timeoutMs;
    for (;;) {
      if (cancelled())
        throw new EdgeError('K3S_SUPERSEDED', `stopped waiting for ${what}: a later operation superseded it`);
      if (await probe().catch(() => false)) return;
      if (this.now() >= deadline) {
        throw new EdgeError(
          'K3S_READINESS_TIMEOUT',
          `gave up waiting for ${what} after ${Math.round(timeoutMs / 1000)} s`,
          {
            hint: `see \`journalctl -u k3s -u k3s-agent\` on ${this.spec.nodeName}`,
          },
        );
      }
      await this.delay(this.pollMs);
    }
  }
}

/** The runtime's snapshot record (shipped, in the site log) from k3s's. */
export function toRuntimeRecord(r: SnapshotRecord): RuntimeSnapshotRecord {
  return {
    name: r.name,
    epoch: r.epoch,
    from: r.node,
    sha256: r.sha256,
    size: r.size,
    createdAt: isoTime(r.createdAt),
  };
}

/** k3s's snapshot record from a shipped one (received from the leader that took it). */
export function fromRuntimeRecord(r: RuntimeSnapshotRecord): SnapshotRecord {
  return {
    v: 1,
    name: r.name,
    node: r.from,
    epoch: r.epoch,
    term: r.epoch,
    sha256: r.sha256,
    size: r.size,
    createdAt: Date.parse(r.createdAt),
  };
}
