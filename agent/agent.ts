/**
 * Agent is the daemon on every robot: the imperative shell around the election and lifecycle
 * statecharts (docs/agent.md). It owns every piece of I/O and runs the effects the statecharts
 * return, in order:
 *
 *   transport / timers / commands ──event(now)──▶ election statechart ──effects──▶ persist (fsync),
 *     stopServer → lifecycle, send, startServer → lifecycle, commit, leaderChanged → lifecycle + mDNS
 *   lifecycle effects ──▶ ControlPlaneRuntime (async) ──result event──▶ lifecycle statechart
 *
 * Election steps run synchronously, one at a time: persistence uses synchronous fsync'd writes, so
 * a vote is on disk before the reply leaves, and no two steps interleave. Time is the monotonic
 * clock (agent/clock.ts), never the wall clock, so wall-clock jumps cannot fire or delay timers.
 */
import { randomBelow } from './random.ts';
import type { Logger } from 'pino';
import {
  durableOf,
  leaseExpiresAt,
  roleOf,
  startElection,
  stepElection,
  type ElectionEffect,
  type ElectionEvent,
  type ElectionSnapshot,
  type Role,
} from '../statecharts/election.ts';
import {
  evaluate,
  heard,
  nodeLossChanges,
  type MembershipView,
  type MemberState,
} from '../statecharts/membership.ts';
import type { Message, NodeId } from '../statecharts/messages.ts';
import {
  defaultLifecycleTiming,
  phaseOf,
  startLifecycle,
  stepLifecycle,
  type LifecycleEffect,
  type LifecycleEvent,
  type LifecycleSnapshot,
  type LifecycleTiming,
} from '../statecharts/node.ts';
import type { AgentConfig } from './config.ts';
import type { ControlPlaneRuntime } from './control-plane/runtime.ts';
import type { SiteApplier } from './site/applier.ts';
import type { Discovery, PeerRecord } from './discovery/discovery.ts';
import type { LogContext } from './log.ts';
import { AgentMetrics } from './metrics.ts';
import type { StateStore } from './persistence/state-store.ts';
import type { Transport } from './transport/transport.ts';
import { monotonicMs } from './clock.ts';
import { EdgeError } from './errors.ts';

export const AGENT_VERSION = '0.1.0';

export interface AgentDeps {
  readonly config: AgentConfig;
  readonly transport: Transport;
  readonly discovery: Discovery;
  readonly runtime: ControlPlaneRuntime;
  /**
   * What the leader does on the server it serves for the site: apply it, mark robots lost and back
   * (agent/site/leader-site.ts, on the runtime's apiServer).
   */
  readonly site: SiteApplier;
  readonly store: StateStore;
  readonly log: Logger;
  /** The logger's term/role context (agent/log.ts); the agent keeps it current. */
  readonly logContext?: LogContext;
  readonly metrics?: AgentMetrics;
  readonly lifecycleTiming?: LifecycleTiming;
  /** Monotonic clock in ms. */
  readonly now?: () => number;
  readonly seed?: number;
}

export interface AgentStatus {
  readonly node: NodeId;
  readonly site: string;
  readonly role: Role;
  readonly voter: boolean;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly commitIndex: number;
  readonly lifecycle: string;
  readonly controlPlane: ReturnType<ControlPlaneRuntime['status']> & {
    readonly runtime: string;
    /** The epoch this robot last applied the site for, while it serves that epoch. */
    readonly siteAppliedEpoch: number | null;
  };
  readonly members: readonly {
    readonly id: NodeId;
    readonly state: MemberState;
    readonly lastHeardAgoMs: number;
    readonly rttMs: number | null;
    readonly voter: boolean;
    readonly addresses: readonly string[];
  }[];
  readonly lastErrors: readonly { readonly atMs: number; readonly message: string }[];
  readonly transport: ReturnType<Transport['stats']>;
  readonly uptimeMs: number;
}

type Timer = ReturnType<typeof setTimeout>;

export class Agent {
  private readonly deps: AgentDeps;
  private readonly cfg: AgentConfig;
  readonly metrics: AgentMetrics;
  private readonly log: Logger;
  private readonly logContext: LogContext;
  private readonly now: () => number;
  private readonly startedAt: number;
  private election!: ElectionSnapshot;
  private lifecycle!: LifecycleSnapshot;
  private readonly timers = new Map<string, Timer>();
  private membership: MembershipView = new Map();
  private peers: PeerRecord[] = [];
  private readonly lastErrors: { atMs: number; message: string }[] = [];
  private leaderLostAt: number | null = null;
  private stopping = false;
  private membershipTimer: Timer | undefined;
  private snapshotTimer: ReturnType<typeof setInterval> | undefined;
  private snapshotting = false;
  /** Robots this leader marked lost (out-of-service); a new leader starts from none. */
  private readonly lostNodes = new Set<NodeId>();
  /** The epoch the site was last applied for; cleared when this robot stops serving. */
  private siteAppliedEpoch: number | null = null;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.cfg = deps.config;
    this.metrics = deps.metrics ?? new AgentMetrics();
    this.now = deps.now ?? monotonicMs;
    this.startedAt = this.now();
    this.log = deps.log;
    this.logContext = deps.logContext ?? { term: 0, role: 'starting' };
    // Read when /metrics is scraped, not kept up to date per datagram.
    this.metrics.observe({
      term: () => this.logContext.term,
      drops: () => this.deps.transport.stats().dropped,
      members: () => {
        const counts: Record<MemberState, number> = { alive: 0, suspect: 0, dead: 0 };
        for (const m of this.membership.values()) counts[m.state]++;
        return counts;
      },
    });
  }

  get nodeId(): NodeId {
    return this.cfg.node.id;
  }

  role(): Role {
    return roleOf(this.election);
  }

  /** start is startCore, then startDiscovery. */
  async start(): Promise<void> {
    this.startCore();
    await this.startDiscovery();
  }

  /**
   * startCore loads durable state and starts the statecharts and the transport handler: after it,
   * status() answers. It throws if the state directory cannot be read or created.
   */
  startCore(): void {
    const durable = this.deps.store.load();
    const now = this.now();
    const e = startElection({
      id: this.cfg.node.id,
      voters: this.cfg.voters,
      learners: [],
      timing: this.cfg.effectiveTiming,
      seed: this.deps.seed ?? randomBelow(2 ** 31),
      fitness: this.cfg.node.fitness,
      durable,
      now,
    });
    this.election = e.snapshot;
    this.logContext.term = durable.term;
    this.logContext.role = 'follower';
    this.metrics.setRole('follower');
    const l = startLifecycle({
      self: this.cfg.node.id,
      timing: this.deps.lifecycleTiming ?? defaultLifecycleTiming,
      now,
    });
    this.lifecycle = l.snapshot;
    this.log.info(
      { durableTerm: durable.term, logLength: durable.log.length, voters: this.cfg.voters },
      'agent starting',
    );

    // The runtime's front door reads the lease straight from the election state (fencing).
    this.deps.runtime.setFence?.((epoch) => leaseExpiresAt(this.election, epoch));
    this.deps.transport.onMessage((msg) => this.onMessage(msg));
    for (const s of this.cfg.network.seeds)
      this.deps.transport.setPeer(s.node, { host: s.host, port: s.port });
    this.deps.discovery.onChange((peers) => this.onPeers(peers));

    this.runElectionEffects(e.effects);
    this.runLifecycleEffects(l.effects);
    // A fifth of the suspect threshold (600 ms in the fleet profile): a silent peer turns suspect at
    // most that late, and an idle robot wakes for it less than twice a second.
    this.membershipTimer = setInterval(
      () => this.evaluateMembership(),
      Math.max(
        this.cfg.effectiveTiming.heartbeatMs * 2,
        Math.min(1000, this.cfg.membership.suspectAfterMs / 5),
      ),
    );
  }

  /** startDiscovery starts advertising and browsing, and takes in the peers found so far. */
  async startDiscovery(): Promise<void> {
    await this.deps.discovery.start();
    this.onPeers(this.deps.discovery.peers());
  }

  /** feed runs one election event and its effects, synchronously. */
  feed(event: ElectionEvent): void {
    if (
      this.stopping &&
      event.type !== 'message' &&
      event.type !== 'transferLeadership' &&
      event.type !== 'heartbeatTimeout'
    )
      return;
    const before = roleOf(this.election);
    let step;
    try {
      step = stepElection(this.election, event);
    } catch (err) {
      this.noteError(`election step ${event.type} failed: ${(err as Error).message}`);
      return;
    }
    this.election = step.snapshot;
    const after = roleOf(this.election);
    this.logContext.term = this.election.context.term;
    this.logContext.role = after;
    if (after !== before) {
      this.metrics.setRole(after);
      if (after === 'preCandidate' || after === 'candidate')
        this.metrics.elections.inc({ result: 'started' });
      if (after === 'leader') this.metrics.elections.inc({ result: 'won' });
      this.log.info(
        { from: before, to: after },
        `${this.nodeId} became ${after} at term ${this.election.context.term}`,
      );
    }
    this.runElectionEffects(step.effects);
  }

  private runElectionEffects(effects: readonly ElectionEffect[]): void {
    for (const e of effects) {
      switch (e.kind) {
        case 'persistHardState':
          this.deps.store.saveHardState(e.term, e.votedFor);
          break;
        case 'persistLog':
          this.deps.store.saveLog(durableOf(this.election).log);
          break;
        case 'stopServer':
          this.feedLifecycle({ type: 'election.stopServer', epoch: e.epoch, now: this.now() });
          break;
        case 'send':
          for (const m of e.messages) {
            this.deps.transport.send(m);
            this.metrics.countMessage('out', m.type);
          }
          break;
        case 'startServer':
          this.feedLifecycle({ type: 'election.startServer', epoch: e.epoch, now: this.now() });
          break;
        case 'commit':
          this.metrics.commitIndex.set(e.fromIndex + e.entries.length - 1);
          break;
        case 'leaderChanged':
          this.onLeaderChanged(e.leader, e.term);
          break;
        case 'proposalRejected':
          this.log.warn({ reason: e.reason, leader: e.leader }, 'site log proposal rejected');
          break;
        case 'trace':
          this.log.debug(e.text);
          break;
        case 'armTimer':
          this.arm(`election/${e.id}`, e.delayMs, () =>
            this.feed({ ...e.event, now: this.now() } as ElectionEvent),
          );
          break;
        case 'disarmTimer':
          this.disarm(`election/${e.id}`);
          break;
      }
    }
  }

  private onLeaderChanged(leader: NodeId | null, term: number): void {
    const now = this.now();
    if (leader === null) this.leaderLostAt ??= now;
    else if (this.leaderLostAt !== null) {
      this.metrics.failover.observe((now - this.leaderLostAt) / 1000);
      this.leaderLostAt = null;
    }
    this.log.info(
      { leader },
      leader
        ? `${this.nodeId} follows ${leader} at term ${term}`
        : `${this.nodeId} lost its leader at term ${term}`,
    );
    this.feedLifecycle({ type: 'election.leader', leader, term, now });
    const role =
      leader === this.nodeId ? 'leader' : this.cfg.voters.includes(this.nodeId) ? 'follower' : 'learner';
    this.deps.discovery
      .update({ role, term })
      .catch((err: Error) => this.noteError(`mDNS update failed: ${err.message}`));
  }

  private feedLifecycle(event: LifecycleEvent): void {
    const before = phaseOf(this.lifecycle);
    const step = stepLifecycle(this.lifecycle, event);
    this.lifecycle = step.snapshot;
    const after = phaseOf(this.lifecycle);
    if (after !== before) {
      this.log.info(
        { lifecycle: after, lastError: this.lifecycle.context.lastError ?? undefined },
        `lifecycle ${before} -> ${after}`,
      );
      if (after === 'leading.serving') this.startSnapshots();
      else if (before === 'leading.serving') {
        this.stopSnapshots();
        this.lostNodes.clear();
      }
      if (!after.startsWith('leading')) this.siteAppliedEpoch = null;
    }
    this.runLifecycleEffects(step.effects);
  }

  private runLifecycleEffects(effects: readonly LifecycleEffect[]): void {
    const rt = this.deps.runtime;
    const back = (event: LifecycleEvent) => this.feedLifecycle(event);
    const failed = (what: string, err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      this.noteError(`${what}: ${message}`);
      return message;
    };
    for (const e of effects) {
      switch (e.kind) {
        case 'startControlPlane':
          rt.startServer(e.epoch).then(
            () => back({ type: 'cp.serverReady', epoch: e.epoch, now: this.now() }),
            (err) =>
              back({
                type: 'cp.serverFailed',
                epoch: e.epoch,
                error: failed('start control plane', err),
                now: this.now(),
              }),
          );
          break;
        case 'stopControlPlane':
          this.log.warn(
            { epoch: e.epoch, reason: e.reason },
            `${this.nodeId} stops its server of epoch ${e.epoch}`,
          );
          rt.stopServer(e.epoch).then(
            () => back({ type: 'cp.stopped', epoch: e.epoch, now: this.now() }),
            (err) => {
              failed('stop control plane', err);
              back({ type: 'cp.stopped', epoch: e.epoch, now: this.now() });
            },
          );
          break;
        case 'applySite':
          this.applySite(e.epoch).then(
            () => back({ type: 'cp.siteApplied', epoch: e.epoch, now: this.now() }),
            (err) =>
              back({
                type: 'cp.siteFailed',
                epoch: e.epoch,
                error: failed('apply site', err),
                now: this.now(),
              }),
          );
          break;
        case 'joinControlPlane': {
          const host =
            this.deps.transport.peerAddress(e.leader)?.host ??
            this.peers.find((p) => p.nodeId === e.leader)?.addresses[0] ??
            e.leader;
          rt.joinAsWorker({ id: e.leader, host }, e.epoch).then(
            () => back({ type: 'cp.workerReady', leader: e.leader, epoch: e.epoch, now: this.now() }),
            (err) =>
              back({
                type: 'cp.workerFailed',
                leader: e.leader,
                epoch: e.epoch,
                error: failed('join control plane', err),
                now: this.now(),
              }),
          );
          break;
        }
        case 'resetWorker':
          rt.resetWorker().catch((err) => failed('reset worker', err));
          break;
        case 'armTimer':
          this.arm(`lifecycle/${e.id}`, e.delayMs, () =>
            this.feedLifecycle({ ...e.event, now: this.now() } as LifecycleEvent),
          );
          break;
        case 'disarmTimer':
          this.disarm(`lifecycle/${e.id}`);
          break;
      }
    }
  }

  private onMessage(msg: Message): void {
    const now = this.now();
    this.metrics.countMessage('in', msg.type);
    // An Append echo gives the leader a round-trip sample to this peer.
    const rtt = msg.type === 'appendResp' && msg.echo > 0 && msg.echo <= now ? now - msg.echo : undefined;
    const r = heard(this.membership, msg.from, now, rtt);
    this.membership = r.view;
    if (r.change && r.change.from !== null)
      this.log.info({ peer: msg.from }, `peer ${msg.from} is ${r.change.to} again (was ${r.change.from})`);
    this.feed({ type: 'message', msg, now });
  }

  private onPeers(peers: PeerRecord[]): void {
    this.peers = peers;
    for (const p of peers) {
      const host = p.addresses[0];
      // A peer that already reached us over the authenticated transport keeps that address.
      if (host && !this.deps.transport.peerAddress(p.nodeId))
        this.deps.transport.setPeer(p.nodeId, { host, port: p.port });
    }
    const learners = [
      ...new Set([...peers.map((p) => p.nodeId), ...this.cfg.network.seeds.map((s) => s.node)]),
    ].filter((id) => !this.cfg.voters.includes(id) && id !== this.nodeId);
    const known = this.election.context.learners;
    if (learners.length !== known.length || learners.some((l) => !known.includes(l))) {
      this.feed({ type: 'setLearners', learners, now: this.now() });
    }
    if (phaseOf(this.lifecycle) === 'discovering') {
      const votersSeen = this.cfg.voters.filter(
        (v) => v === this.nodeId || peers.some((p) => p.nodeId === v),
      ).length;
      if (votersSeen === this.cfg.voters.length)
        this.feedLifecycle({ type: 'discovery.ready', now: this.now() });
    }
  }

  /**
   * startSnapshots: while this robot serves, snapshot its control plane at once and then on a
   * schedule, ship each snapshot to the other voters and record it in the replicated site log.
   */
  private startSnapshots(): void {
    const rt = this.deps.runtime;
    if (!rt.snapshot) return;
    this.stopSnapshots();
    const take = () => void this.takeSnapshot().catch((e: Error) => this.noteError(`snapshot: ${e.message}`));
    this.snapshotTimer = setInterval(take, this.cfg.snapshots.intervalMs);
    this.snapshotTimer.unref?.();
    take();
  }

  private stopSnapshots(): void {
    clearInterval(this.snapshotTimer);
    this.snapshotTimer = undefined;
  }

  private async takeSnapshot(): Promise<void> {
    const rt = this.deps.runtime;
    const epoch = this.election.context.serverEpoch;
    if (!rt.snapshot || epoch === null || phaseOf(this.lifecycle) !== 'leading.serving' || this.snapshotting)
      return;
    this.snapshotting = true;
    try {
      const record = await rt.snapshot(epoch);
      const to = this.cfg.voters
        .filter((v) => v !== this.nodeId)
        .flatMap((id) => {
          const host = this.deps.transport.peerAddress(id)?.host;
          return host ? [{ id, host }] : [];
        });
      const kept = rt.shipSnapshot ? await rt.shipSnapshot(record.name, to) : [];
      const data = JSON.stringify({ ...record, keptBy: [this.nodeId, ...kept] });
      if (roleOf(this.election) === 'leader')
        this.feed({ type: 'propose', kind: 'snapshot', data, now: this.now() });
      this.log.info(
        { epoch, snapshot: record.name, size: record.size, keptBy: [this.nodeId, ...kept] },
        `${this.nodeId} took snapshot ${record.name} of epoch ${epoch}; ${kept.length} of ${to.length} voters keep it`,
      );
    } finally {
      this.snapshotting = false;
    }
  }

  /** applySite applies the site on this robot's server, which must serve `epoch`. */
  private async applySite(epoch: number): Promise<void> {
    const server = this.deps.runtime.status().server;
    if (server?.epoch !== epoch || server.state !== 'serving')
      throw new EdgeError('NO_SERVER', `no serving server of epoch ${epoch} to apply the site to`);
    const report = await this.deps.site.apply(epoch);
    if (this.deps.runtime.status().server?.epoch === epoch) this.siteAppliedEpoch = epoch;
    this.log.info(
      { epoch, created: report.created, updated: report.updated, pruned: report.pruned },
      `${this.nodeId} applied site ${this.cfg.site.id} for epoch ${epoch}`,
    );
  }

  /** actOnNodeLoss: the serving leader marks robots lost past the grace period, and back again. */
  private actOnNodeLoss(): void {
    const site = this.deps.site;
    if (phaseOf(this.lifecycle) !== 'leading.serving') return;
    const d = nodeLossChanges(this.membership, this.now(), this.cfg.membership.lostAfterMs, this.lostNodes);
    for (const id of d.lost) {
      this.lostNodes.add(id);
      site.markNodeLost(id).then(
        (report) =>
          this.log.warn({ peer: id, report }, `${id} is lost: its Node is out of service, its IPs freed`),
        (e: Error) => {
          this.lostNodes.delete(id); // retried on the next evaluation
          this.noteError(`mark ${id} lost: ${e.message}`);
        },
      );
    }
    for (const id of d.returned) {
      this.lostNodes.delete(id);
      site.markNodeReturned(id).then(
        (report) => this.log.info({ peer: id, report }, `${id} is back: out-of-service taint removed`),
        (e: Error) => {
          this.lostNodes.add(id);
          this.noteError(`mark ${id} returned: ${e.message}`);
        },
      );
    }
  }

  private evaluateMembership(): void {
    const r = evaluate(this.membership, this.now(), this.cfg.membership);
    this.membership = r.view;
    for (const c of r.changes)
      this.log.warn({ peer: c.id, from: c.from, to: c.to }, `peer ${c.id} is ${c.to}`);
    this.actOnNodeLoss();
  }

  private arm(id: string, delayMs: number, fire: () => void): void {
    this.disarm(id);
    const due = this.now() + delayMs;
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        this.metrics.timerLateness.observe(Math.max(0, this.now() - due) / 1000);
        fire();
      }, delayMs),
    );
  }

  private disarm(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  private noteError(message: string): void {
    this.lastErrors.push({ atMs: Math.round(this.now() - this.startedAt), message });
    if (this.lastErrors.length > 20) this.lastErrors.shift();
    this.log.error(message);
  }

  /** ready: this robot does its part (serves, or is Ready as a worker). */
  ready(): boolean {
    const p = phaseOf(this.lifecycle);
    return p === 'leading.serving' || p === 'following.ready';
  }

  status(): AgentStatus {
    const c = this.election.context;
    const now = this.now();
    const ids = new Set<NodeId>([...this.membership.keys(), ...this.peers.map((p) => p.nodeId)]);
    ids.delete(this.nodeId);
    return {
      node: this.nodeId,
      site: this.cfg.site.id,
      role: roleOf(this.election),
      voter: this.cfg.voters.includes(this.nodeId),
      term: c.term,
      leader: c.leader,
      commitIndex: c.commitIndex,
      lifecycle: phaseOf(this.lifecycle),
      controlPlane: {
        runtime: this.deps.runtime.kind,
        ...this.deps.runtime.status(),
        siteAppliedEpoch: this.siteAppliedEpoch,
      },
      members: [...ids].sort().map((id) => {
        const m = this.membership.get(id);
        const p = this.peers.find((x) => x.nodeId === id);
        return {
          id,
          state: m?.state ?? 'suspect',
          lastHeardAgoMs: m ? Math.round(now - m.lastHeardMs) : -1,
          rttMs: m?.rttMs == null ? null : Math.round(m.rttMs * 10) / 10,
          voter: this.cfg.voters.includes(id),
          addresses: p?.addresses ?? [],
        };
      }),
      lastErrors: [...this.lastErrors],
      transport: this.deps.transport.stats(),
      uptimeMs: Math.round(now - this.startedAt),
    };
  }

  /**
   * stop is the clean shutdown (SIGTERM): a leader first hands leadership to the best voter, so the
   * site does not wait out an election timeout; then the mDNS goodbye, then sockets and timers.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (roleOf(this.election) === 'leader') {
      this.log.info(`${this.nodeId} hands over leadership before stopping`);
      this.feed({ type: 'transferLeadership', now: this.now() });
      const deadline = this.now() + this.cfg.effectiveTiming.transferTimeoutMs;
      while (roleOf(this.election) === 'leader' && this.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
    }
    clearInterval(this.membershipTimer);
    this.stopSnapshots();
    for (const id of [...this.timers.keys()]) this.disarm(id);
    await this.deps.discovery.close();
    const epoch = this.election.context.serverEpoch;
    if (epoch !== null) await this.deps.runtime.stopServer(epoch).catch(() => {});
    await this.deps.transport.close();
    this.log.info('agent stopped');
  }
}
