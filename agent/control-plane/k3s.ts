/**
 * K3sControlPlane: the ControlPlaneRuntime of a real robot. It runs the k3s plans
 * (agent/k3s/plans.ts) through a CommandRunner on the robot itself and waits for readiness through
 * injectable probes (agent/k3s/robot-io.ts). Decisions are the plans' and snapshots.ts's; this class
 * sequences them, keeps the status, and makes a demotion win over a start in flight.
 *
 *   startServer(epoch)   choose resume / restore / fresh (chooseServerStart), run startServerPlan,
 *                        wait for /readyz, then forget the Nodes of robots no longer in the site
 *   stopServer(epoch)    stopServerPlan at once, even if a start is still running (that start stops
 *                        at its next step), and again once that start has given up
 *   siteServer(epoch)    the k3s server's API (admin kubeconfig), while it serves that epoch: the
 *                        agent's LeaderSite applies the site and acts on node loss through it
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
import { LOCAL_SNAPSHOT_DIR, K3S_BIN } from '../k3s/paths.ts';
import {
  forgetNodesPlan,
  joinWorkerPlan,
  resetWorkerPlan,
  snapshotSavePlan,
  startServerPlan,
  stopServerPlan,
} from '../k3s/plans.ts';
import {
  fileFacts,
  hasLocalEtcd,
  heldSnapshots,
  listSnapshotDir,
  readServedEpoch,
  runnerProbes,
  type K3sProbes,
} from '../k3s/robot-io.ts';
import type { K3sNodeSpec } from '../k3s/settings.ts';
import {
  chooseServerStart,
  savedSnapshotFile,
  snapshotName,
  type HeldSnapshot,
  type ServerStart,
  type SnapshotRecord,
} from '../k3s/snapshots.ts';
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
  /** The k3s server's API on this robot (its admin kubeconfig), for siteServer. */
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
}

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
  private lastStart: ServerStart | null = null;
  /** Bumped by every server operation: an older one still running sees it and stops. */
  private serverOp = 0;
  private workerOp = 0;
  private startInFlight: Promise<void> | null = null;
  private closed = false;
  private readonly snapshotKeys: SnapshotKeys | undefined;
  private readonly receiver: SnapshotReceiver | undefined;
  private readonly snapshotPort: number | undefined;
  private siteView: SiteView | null = null;
  /** Snapshots this robot took while it led (their files are in LOCAL_SNAPSHOT_DIR). */
  private readonly taken: SnapshotRecord[] = [];

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
    // chooseServerStart then verifies each file against its committed record.
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
      const start = await this.chooseStart();
      this.lastStart = start;
      const restore =
        start.kind === 'restore' ? { path: start.file.path, sha256: start.record.sha256 } : undefined;
      await executePlan(this.runner, startServerPlan(this.spec, epoch, restore), { cancelled });
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

  private async chooseStart(): Promise<ServerStart> {
    const records = this.snapshots?.records() ?? [];
    const names = new Set(records.map((r) => r.name));
    const held =
      records.length === 0
        ? []
        : await (this.snapshots?.held ? this.snapshots.held(names) : heldSnapshots(this.runner, names));
    return chooseServerStart({
      records,
      held,
      lastServedEpoch: await readServedEpoch(this.runner),
      hasLocalDb: await hasLocalEtcd(this.runner),
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
    const inFlight = this.startInFlight;
    await executePlan(this.runner, stopServerPlan(this.spec, epoch));
    this.server = null;
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
    return this.apiServer();
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
    const name = snapshotName(this.spec.site, server.epoch, term);
    await executePlan(this.runner, snapshotSavePlan(this.spec, name));
    const file = savedSnapshotFile(
      await listSnapshotDir(this.runner, LOCAL_SNAPSHOT_DIR),
      name,
      this.spec.nodeName,
    );
    const facts = file ? await fileFacts(this.runner, `${LOCAL_SNAPSHOT_DIR}/${file}`) : null;
    if (!file || !facts) {
      throw new EdgeError(
        'K3S_SNAPSHOT_MISSING',
        `k3s reported snapshot ${name} saved, but no such file is in ${LOCAL_SNAPSHOT_DIR}`,
        {
          hint: 'check etcd-snapshot-dir in /etc/rancher/k3s/config.yaml',
        },
      );
    }
    return { v: 1, name: file, node: this.spec.nodeName, epoch: server.epoch, term, ...facts, createdAt };
  }

  /** The agent's snapshot hook: take one (k3s etcd-snapshot save) and keep its record. */
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
    const outcomes = await Promise.all(
      to.map((p) =>
        pushSnapshot({
          self: this.spec.nodeName,
          term,
          to: p,
          record,
          content,
          keys,
          port: this.snapshotPort,
        }),
      ),
    );
    return outcomes.filter((o) => o.kept).map((o) => o.to);
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
        serverStart: this.lastStart ? `${this.lastStart.kind}: ${this.lastStart.reason}` : null,
      },
    };
  }

  /** close stops waiting; it leaves k3s as it is (the units are PartOf the agent's unit). */
  async close(): Promise<void> {
    this.closed = true;
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
