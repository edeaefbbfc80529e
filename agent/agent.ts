/**
 * Agent is the daemon on every robot: the imperative shell around the election and lifecycle
 * statecharts (docs/agent.md). It owns every piece of I/O. The election runs in the shared driver
 * (statecharts/driver.ts, which documents the effect order); the agent gives it its ports:
 *
 *   transport / timers / commands ──event(now)──▶ ElectionDriver ──ports──▶ persist (fsync),
 *     stopServer → lifecycle, send (UDP), startServer → lifecycle, commit, leaderChanged → lifecycle + mDNS
 *   lifecycle effects ──▶ ControlPlaneRuntime (async) ──result event──▶ lifecycle statechart
 *
 * Election steps run synchronously, one at a time: persistence uses synchronous fsync'd writes, so
 * a vote is on disk before the reply leaves, and no two steps interleave. Time is the monotonic
 * clock (agent/clock.ts), never the wall clock, so wall-clock jumps cannot fire or delay timers.
 */
import { randomBelow } from './random.ts';
import type { Logger } from 'pino';
import { ElectionDriver } from '../statecharts/driver.ts';
import {
  leaseExpiresAt,
  liveLeader,
  roleOf,
  type ElectionEvent,
  type ElectionSnapshot,
  type Role,
  type TimerId,
} from '../statecharts/election.ts';
import {
  evaluate,
  heard,
  nodeLossChanges,
  quorumView,
  type MembershipView,
  type MemberState,
  type QuorumView,
} from '../statecharts/membership.ts';
import type { LogEntry, Message, NodeId } from '../statecharts/messages.ts';
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
import { CommittedSnapshots, encodeLogRecord } from './control-plane/snapshot-record.ts';
import { discoveryCounters, type Discovery, type PeerRecord } from './discovery/discovery.ts';
import { planLearners, siteSubnets } from './learners.ts';
import type { LogContext } from './log.ts';
import { AgentMetrics } from './metrics.ts';
import type { StateStore } from './persistence/state-store.ts';
import type { Transport } from './transport/transport.ts';
import { monotonicMs } from './clock.ts';
import { EdgeError } from './errors.ts';
import type { Cidr } from './site/ipv4.ts';
import type { MembersVersion } from './site/members.ts';
import type { LeaderSite } from './site/leader-site.ts';
import type { ObjectClient } from './site/object-client.ts';
import type { SiteDocument, SiteSpecVersion } from './site/spec-log.ts';
import type { SiteSpecSource } from './site/spec-source.ts';
import { isoTime, wallClockMs } from './wall-clock.ts';

type SpecLog = typeof import('./site/spec-log.ts');
let specLogModule: SpecLog | null = null;
/**
 * specLog loads the site spec log helpers when a robot first needs them (it leads, a site entry
 * commits, an operator asks), so that an idle robot never parses them.
 */
async function specLog(): Promise<SpecLog> {
  return (specLogModule ??= await import('./site/spec-log.ts'));
}
type MembersLog = typeof import('./site/members.ts');
let membersLogModule: MembersLog | null = null;
/** membersLog loads the site membership helpers (they read the log with spec-log's) the same way. */
async function membersLog(): Promise<MembersLog> {
  return (membersLogModule ??= await import('./site/members.ts'));
}

export const AGENT_VERSION = '0.1.0';
/** Advertised ids the site does not name that are logged, at most: the rest are only counted. */
const MAX_LOGGED_UNKNOWN_ROBOTS = 32;
/**
 * How often a serving leader checks its datastore's standby replica when nothing has changed. A
 * voter that dies or comes back triggers a check at once (evaluateMembership), so this only bounds
 * how long drift the agent cannot see (a learner that failed on a live robot) goes unnoticed. Each
 * check lists the datastore's members, which on a robot is an etcdctl process.
 */
const REPLICA_SYNC_MS = 30_000;
/** After a check that failed, the next comes this soon: the site should not stay without a standby. */
const REPLICA_RETRY_MS = 2_000;

/** The lifecycle phases of one served epoch, between its start and its stop. */
const SAME_SERVER_PHASES: ReadonlySet<string> = new Set([
  'leading.applyingSite',
  'leading.siteRetry',
  'leading.serving',
]);

export interface AgentDeps {
  readonly config: AgentConfig;
  readonly transport: Transport;
  readonly discovery: Discovery;
  readonly runtime: ControlPlaneRuntime;
  readonly store: StateStore;
  readonly log: Logger;
  /** The logger's term/role context (agent/log.ts); the agent keeps it current. */
  readonly logContext?: LogContext;
  readonly metrics?: AgentMetrics;
  readonly lifecycleTiming?: LifecycleTiming;
  /** How often a serving leader checks its standby replica when idle, and after a failed check (ms). */
  readonly replicaSync?: { readonly idleMs: number; readonly retryMs: number };
  /** Monotonic clock in ms. */
  readonly now?: () => number;
  readonly seed?: number;
  /**
   * Reads and checks site specs: the installed one seeds the site log. Without it, and with no
   * spec committed, the leader writes no site objects and acts on no node loss (test sites only).
   */
  readonly siteSpecs?: SiteSpecSource;
  /**
   * The operator keys requests are checked with, one per key generation in use (agent/site-key.ts
   * Keyring.operatorKeys: voters only); none: every request is refused.
   */
  readonly operatorKeys?: () => readonly Uint8Array[];
  /** The key generations in use, for /status (agent/site-key.ts Keyring.summary); never a key. */
  readonly keys?: () => KeysStatus;
}

export interface KeysStatus {
  readonly role: string;
  readonly send: number;
  readonly accepted: readonly number[];
  readonly refused: readonly NodeId[];
}

/** An operator's proposal of a new site spec (`edgectl site apply`, POST /site/apply). */
export interface SiteApplyRequest {
  readonly site: string;
  /** The committed version the operator diffed against (0: none yet). */
  readonly baseVersion: number;
  /** The proposed spec, canonical JSON. */
  readonly spec: string;
  /** signSiteApply's tag over site, baseVersion and the spec's digest. */
  readonly mac: string;
}

export type SiteApplyOutcome =
  | { readonly kind: 'notLeader'; readonly leader: NodeId; readonly leaderAddress: string | null }
  | { readonly kind: 'unchanged'; readonly version: number; readonly digest: string }
  | {
      readonly kind: 'committed';
      readonly version: number;
      readonly term: number;
      readonly index: number;
      readonly digest: string;
    };

/** An operator's new membership (`edgectl robot add|remove`, POST /site/members). */
export interface MembersRequest {
  readonly site: string;
  /** The committed membership version the operator started from (0: none yet). */
  readonly baseVersion: number;
  /** The robots the site names that do not vote. */
  readonly workers: readonly NodeId[];
  /** signMembers' tag over site, baseVersion and the membership's digest. */
  readonly mac: string;
}

export type MembersOutcome = SiteApplyOutcome;

/** What this robot knows of the site's membership (GET /site/members). */
export interface MembersView {
  readonly node: NodeId;
  readonly site: string;
  readonly leader: NodeId | null;
  readonly leaderAddress: string | null;
  /** The newest committed membership; null: none yet, each robot's config stands in. */
  readonly committed: MembersVersion | null;
  /** This robot's config's workers (what bootstrap installed). */
  readonly config: readonly NodeId[];
}

/** What this robot knows of the site spec (GET /site). */
export interface SiteView {
  readonly node: NodeId;
  readonly site: string;
  readonly leader: NodeId | null;
  readonly leaderAddress: string | null;
  readonly commitIndex: number;
  readonly committed: SiteSpecVersion | null;
  /** As leader: the version it applied last (0: the installed spec), and for which epoch. */
  readonly applied: { readonly version: number; readonly digest: string; readonly epoch: number } | null;
}

export interface SiteHistoryEntry {
  readonly version: number;
  readonly term: number;
  readonly index: number;
  readonly digest: string;
  readonly at: string;
  /** What changed from the previous version, one `path: before → after` line per leaf. */
  readonly changes: readonly string[];
}

export interface AgentStatus {
  readonly node: NodeId;
  readonly site: string;
  readonly role: Role;
  readonly voter: boolean;
  /** A voter that never leads and runs no control plane. */
  readonly witness: boolean;
  readonly term: number;
  /** The leader this robot can vouch for now (null without one, not the last one it heard). */
  readonly leader: NodeId | null;
  readonly quorum: QuorumView & { readonly noQuorumSince: string | null };
  readonly commitIndex: number;
  readonly lifecycle: string;
  readonly controlPlane: ReturnType<ControlPlaneRuntime['status']> & {
    readonly runtime: string;
    /** The epoch whose server this leader applied the site to, while that server serves; else null. */
    readonly siteAppliedEpoch: number | null;
  };
  readonly members: readonly {
    readonly id: NodeId;
    /**
     * What this robot knows of the member. `not-heard`: it does not hear that member directly (a
     * follower hears only the leader), so it cannot say; only the leader's view says alive or dead.
     */
    readonly state: ReportedMemberState;
    /** Null when this robot has never heard the member. */
    readonly lastHeardAgoMs: number | null;
    readonly rttMs: number | null;
    readonly voter: boolean;
    readonly witness: boolean;
    readonly addresses: readonly string[];
  }[];
  readonly lastErrors: readonly { readonly atMs: number; readonly message: string }[];
  readonly transport: ReturnType<Transport['stats']>;
  /** Which key generations this robot sends with and accepts (edgectl site rotate-keys). */
  readonly keys?: KeysStatus;
  /**
   * Discovery's counters (for mDNS: datagrams received, malformed, bad TXT, …), by name, and the
   * agent's own: ignoredUnknownRobots (advertised ids the site does not name) and
   * ignoredOutsideSubnets (robots of the site advertised only outside its subnets).
   */
  readonly discovery: Readonly<Record<string, number>>;
  /** The site's membership version in force (null: the config's) and the learners it gives. */
  readonly learners?: { readonly membersVersion: number | null; readonly learners: readonly NodeId[] };
  readonly uptimeMs: number;
}

export type ReportedMemberState = MemberState | 'not-heard';

type Timer = ReturnType<typeof setTimeout>;

interface PendingProposal {
  readonly index: number;
  readonly term: number;
  readonly version: number;
  readonly digest: string;
  readonly done: (err: EdgeError | null) => void;
}

/** What each site log document is called in errors, and the code of its commit failures. */
const DOCUMENTS: Record<
  SiteDocument,
  { readonly name: string; readonly code: string; readonly check: string }
> = {
  site: { name: 'site spec', code: 'SITE_APPLY_NOT_COMMITTED', check: 'edgectl site history' },
  members: { name: 'site membership', code: 'MEMBERS_NOT_COMMITTED', check: 'edgectl status (learners)' },
};

export class Agent {
  private readonly deps: AgentDeps;
  private readonly cfg: AgentConfig;
  readonly metrics: AgentMetrics;
  private readonly log: Logger;
  private readonly logContext: LogContext;
  private readonly now: () => number;
  private readonly startedAt: number;
  /** The election core and its timers (statecharts/driver.ts); this class provides its ports. */
  private driver!: ElectionDriver<Timer | undefined>;
  /** The log as last made durable: persistLog replaces its tail, and the store writes it whole. */
  private durableLog: readonly LogEntry[] = [];
  private lifecycle!: LifecycleSnapshot;
  private readonly timers = new Map<string, Timer>();
  private membership: MembershipView = new Map();
  /**
   * What discovery advertises, unauthenticated: hints for the transport, the learners plan and
   * /status. Where a peer is reached is the transport's alone (addressOf).
   */
  private advertised: PeerRecord[] = [];
  /** The site's membership as its log committed it last (null: none yet, the config's stands in). */
  private committedMembers: MembersVersion | null = null;
  /** The site's subnets (the committed spec's management CIDRs); empty: discovery's on-link filter only. */
  private subnets: readonly Cidr[] = [];
  /** Advertised ids the site does not name, as of the last discovery update. */
  private unknownAdvertised = new Set<NodeId>();
  private unknownLogged = 0;
  /** Advertised ids ignored because the site does not name them, counted each time one appears. */
  private ignoredUnknownRobots = 0;
  /** Advertised robots of the site whose every address was outside the site's subnets. */
  private ignoredOutsideSubnets = 0;
  private outsideAdvertised = new Set<NodeId>();
  private readonly lastErrors: { atMs: number; message: string }[] = [];
  private leaderLostAt: number | null = null;
  /** Wall-clock ms since this robot has seen no quorum, or null. */
  private noQuorumSince: number | null = null;
  private stopping = false;
  private membershipTimer: Timer | undefined;
  private snapshotTimer: ReturnType<typeof setInterval> | undefined;
  /** The serving epoch the snapshot and replica schedules run for, or null while they are stopped. */
  private schedulesEpoch: number | null = null;
  private replicaTimer: Timer | undefined;
  private readonly replicaSync: { readonly idleMs: number; readonly retryMs: number };
  private syncingReplicas = false;
  /** A check asked for while one ran (a voter died or came back): it runs when that one ends. */
  private replicaSyncWanted = false;
  private snapshotting = false;
  /** Robots this leader marked lost (out-of-service); a new leader starts from none. */
  private readonly lostNodes = new Set<NodeId>();
  /** The spec this leader applied last: 0 is the installed one, before the log held any. */
  private appliedSpec: { version: number; digest: string; epoch: number } | null = null;
  /** The epoch of the server this robot last applied the site to (status checks it still serves). */
  private siteAppliedEpoch: number | null = null;
  /**
   * The robot's one LeaderSite (agent/site/leader-site.ts): it applies the site and acts on node
   * loss on whichever server this robot serves. Loaded when the robot first leads, with the spec
   * parser and the addon templates, so that a worker never loads them.
   */
  private leaderSite: Promise<LeaderSite> | undefined;
  /** An operator's proposal per document (site spec, membership) waiting for its manifest to commit. */
  private readonly pending = new Map<SiteDocument, PendingProposal>();

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.cfg = deps.config;
    this.metrics = deps.metrics ?? new AgentMetrics();
    this.now = deps.now ?? monotonicMs;
    this.replicaSync = deps.replicaSync ?? { idleMs: REPLICA_SYNC_MS, retryMs: REPLICA_RETRY_MS };
    this.startedAt = this.now();
    this.log = deps.log;
    this.logContext = deps.logContext ?? { term: 0, role: 'starting' };
    // Read when /metrics is scraped, not kept up to date per datagram.
    this.metrics.observe({
      term: () => this.logContext.term,
      drops: () => this.deps.transport.stats().dropped,
      members: () => {
        const counts: Record<ReportedMemberState, number> = { alive: 0, suspect: 0, dead: 0, 'not-heard': 0 };
        for (const m of this.status().members) counts[m.state]++;
        return counts;
      },
      snapshotPushes: () => this.deps.runtime.snapshotPushes?.() ?? {},
      discovery: () => this.discoveryCounters(),
    });
  }

  get nodeId(): NodeId {
    return this.cfg.node.id;
  }

  /** Every robot with a vote: the voters that may lead, and the witnesses. */
  private voters(): NodeId[] {
    return [...this.cfg.voters, ...this.cfg.witnesses];
  }

  private isWitness(id: NodeId = this.nodeId): boolean {
    return this.cfg.witnesses.includes(id);
  }

  role(): Role {
    return roleOf(this.election);
  }

  /**
   * start loads durable state and starts the statecharts and the transport handler, then runs
   * `beforeDiscovery` (the status endpoint, so /status and /metrics answer while mDNS is still
   * starting), then starts discovery.
   */
  async start(beforeDiscovery?: () => Promise<void>): Promise<void> {
    const durable = this.deps.store.load();
    this.durableLog = durable.log;
    const now = this.now();
    // The driver runs the election's first effects (its election timer) as it starts.
    this.driver = new ElectionDriver(
      {
        id: this.cfg.node.id,
        voters: this.voters(),
        learners: [],
        witnesses: this.cfg.witnesses,
        timing: this.cfg.effectiveTiming,
        seed: this.deps.seed ?? randomBelow(2 ** 31),
        fitness: this.cfg.node.fitness,
        durable,
      },
      this.electionPorts(),
    );
    this.logContext.term = durable.term;
    this.logContext.role = 'follower';
    this.metrics.setRole('follower');
    const l = startLifecycle({
      self: this.cfg.node.id,
      witness: this.isWitness(),
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
    // Its snapshot receiver accepts only the current leader, and a new leader restores only what
    // the site log committed.
    const committed = new CommittedSnapshots();
    this.deps.runtime.setSiteView?.({
      leadership: () => ({ term: this.election.context.term, leader: this.election.context.leader }),
      committedSnapshots: () => committed.read(this.election.context.log, this.election.context.commitIndex),
    });
    this.deps.transport.onMessage((msg) => this.onMessage(msg));
    for (const s of this.cfg.network.seeds)
      this.deps.transport.setPeer(s.node, { host: s.host, port: s.port });
    this.deps.discovery.onChange((peers) => this.onPeers(peers));

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
    await beforeDiscovery?.();
    await this.deps.discovery.start();
    this.onPeers(this.deps.discovery.peers());
  }

  private get election(): ElectionSnapshot {
    return this.driver.snapshot;
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
    try {
      this.driver.step(event);
    } catch (err) {
      this.noteError(`election step ${event.type} failed: ${(err as Error).message}`);
    }
  }

  /**
   * electionPorts: what the election driver runs its effects against. Persistence is synchronous
   * and fsync'd (StateStore), so a vote is on disk before the reply leaves; timers are the monotonic
   * setTimeout, and a timer that fires feeds its event through feed() like any other.
   */
  private electionPorts() {
    return {
      clock: { now: this.now },
      timers: {
        start: (id: TimerId, delayMs: number, fire: () => void): Timer | undefined => {
          if (this.stopping && id !== 'heartbeat') return undefined;
          const due = this.now() + delayMs;
          return setTimeout(() => {
            this.metrics.timerLateness.observe(Math.max(0, this.now() - due) / 1000);
            if (this.stopping && id !== 'heartbeat') return;
            try {
              fire();
            } catch (err) {
              this.noteError(`election timer ${id} failed: ${(err as Error).message}`);
            }
          }, delayMs);
        },
        cancel: (handle: Timer | undefined) => clearTimeout(handle),
      },
      send: {
        send: (messages: readonly Message[]) => {
          for (const m of messages) {
            this.deps.transport.send(m);
            this.metrics.countMessage('out', m.type);
          }
        },
      },
      persist: {
        persistHardState: (term: number, votedFor: NodeId | null) =>
          this.deps.store.saveHardState(term, votedFor),
        persistLog: (fromIndex: number, entries: readonly LogEntry[]) => {
          this.durableLog = this.durableLog.slice(0, fromIndex - 1).concat(entries);
          this.deps.store.saveLog(this.durableLog);
        },
      },
      lifecycle: {
        stopServer: (epoch: number) =>
          this.feedLifecycle({ type: 'election.stopServer', epoch, now: this.now() }),
        startServer: (epoch: number) =>
          this.feedLifecycle({ type: 'election.startServer', epoch, now: this.now() }),
        commit: (fromIndex: number, entries: readonly LogEntry[]) => {
          this.metrics.commitIndex.set(fromIndex + entries.length - 1);
          if (entries.some((x) => x.kind === 'site')) {
            this.onSiteEntriesCommitted();
            // Only a robot that may lead heartbeats learners: a worker or a witness never loads this.
            if (this.cfg.voters.includes(this.nodeId))
              void this.refreshSiteView().catch((e: Error) => this.noteError(`site view: ${e.message}`));
          }
        },
        leaderChanged: (leader: NodeId | null, term: number) => this.onLeaderChanged(leader, term),
        proposalRejected: (reason: string, leader: NodeId | null) =>
          this.log.warn({ reason, leader }, 'site log proposal rejected'),
        trace: (text: string) => this.log.debug(text),
      },
      observer: {
        stepped: (before: ElectionSnapshot, after: ElectionSnapshot) => {
          const from = roleOf(before);
          const to = roleOf(after);
          this.logContext.term = after.context.term;
          this.logContext.role = to;
          if (to === from) return;
          this.metrics.setRole(to);
          if (to === 'preCandidate' || to === 'candidate') this.metrics.elections.inc({ result: 'started' });
          if (to === 'leader') this.metrics.elections.inc({ result: 'won' });
          this.log.info({ from, to }, `${this.nodeId} became ${to} at term ${after.context.term}`);
        },
      },
    };
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
    for (const [doc, p] of this.pending)
      if (leader !== this.nodeId || term !== p.term)
        this.settlePending(
          doc,
          new EdgeError(
            DOCUMENTS[doc].code,
            `${this.nodeId} lost its leadership at term ${term} before ${DOCUMENTS[doc].name} version ${p.version} committed`,
            { hint: `run ${DOCUMENTS[doc].check} to see whether it was committed; if not, send it again` },
          ),
        );
    this.feedLifecycle({ type: 'election.leader', leader, term, now });
    const role =
      leader === this.nodeId ? 'leader' : this.voters().includes(this.nodeId) ? 'follower' : 'learner';
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
      // The schedules run for one serving epoch: a reconcile (serving, applying, serving again)
      // keeps them, or the leader would snapshot and ship at every reconcile instead of on its
      // schedule. While the site is being applied they skip their turn (they check the phase).
      const epoch = this.election.context.serverEpoch;
      if (after === 'leading.serving' && epoch !== this.schedulesEpoch) {
        this.startSnapshots();
        this.schedulesEpoch = epoch;
        this.startReplicas();
      } else if (!after.startsWith('leading.')) {
        this.stopSnapshots();
      }
      // The robots this leader holds lost stay so through a reconcile of the same server (serving,
      // applying the site, retrying it); anything else ends that server and what it held.
      if (!SAME_SERVER_PHASES.has(after)) this.lostNodes.clear();
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
          this.siteAppliedEpoch = null;
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
          this.siteAppliedEpoch = null;
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
            () => {
              back({ type: 'cp.siteApplied', epoch: e.epoch, now: this.now() });
              // A version committed while this apply ran is applied now, not at the next reconcile.
              void this.reapplyIfBehind();
            },
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
          // The leader's address as its own authenticated datagrams gave it, never an advertisement's.
          const host = this.addressOf(e.leader) ?? e.leader;
          // A voter also replicates the leader's datastore, so that it can take over without loss.
          if (this.cfg.node.serverCapable && rt.followReplica)
            rt.followReplica({ id: e.leader, host }, e.epoch).catch((err) => failed('replicate', err));
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
    // A voter first heard, or heard again after it was dead, may take the standby replica.
    if (r.change && r.change.from !== 'suspect' && this.isReplicaCandidate(msg.from)) this.syncReplicasNow();
  }

  private onPeers(peers: PeerRecord[]): void {
    this.advertised = peers;
    this.updateLearners();
    if (phaseOf(this.lifecycle) === 'discovering') {
      const voters = this.voters();
      const votersSeen = voters.filter((v) => v === this.nodeId || peers.some((p) => p.nodeId === v)).length;
      if (votersSeen === voters.length) this.feedLifecycle({ type: 'discovery.ready', now: this.now() });
    }
  }

  /** namedRobots: the robots the site names that do not vote: its committed membership, else the config's. */
  private namedRobots(): readonly NodeId[] {
    if (this.committedMembers) return this.committedMembers.workers;
    return [...this.cfg.workers, ...this.cfg.network.seeds.map((s) => s.node)];
  }

  /**
   * updateLearners: who the leader heartbeats besides the voters, and where discovery's hints
   * point the transport (agent/learners.ts decides). Learners are the robots the site names; an
   * advertised id it does not name is ignored: no heartbeat, no probe, no transport address, only a
   * count and a log line. Hints are only hints: the transport keeps the address a peer's own
   * authenticated datagram gave it.
   */
  private updateLearners(): void {
    const plan = planLearners({
      self: this.nodeId,
      voters: this.voters(),
      named: this.namedRobots(),
      refused: this.deps.keys?.().refused ?? [],
      advertised: this.advertised,
      subnets: this.subnets,
    });
    const ports = new Map(this.advertised.map((p) => [p.nodeId, p.port]));
    for (const h of plan.hints)
      this.deps.transport.setPeer(h.nodeId, { host: h.host, port: ports.get(h.nodeId)! });
    this.noteIgnored(plan.unknown, plan.outsideSubnets);
    const known = this.election.context.learners;
    if (plan.learners.length !== known.length || plan.learners.some((l, i) => known[i] !== l))
      this.feed({ type: 'setLearners', learners: plan.learners, now: this.now() });
  }

  /** noteIgnored counts each advertised id the site does not name as it appears, and logs the first few. */
  private noteIgnored(unknown: readonly NodeId[], outside: readonly NodeId[]): void {
    for (const id of unknown) {
      if (this.unknownAdvertised.has(id)) continue;
      this.ignoredUnknownRobots++;
      if (this.unknownLogged < MAX_LOGGED_UNKNOWN_ROBOTS) {
        this.unknownLogged++;
        this.log.warn(
          { peer: id },
          this.unknownLogged === MAX_LOGGED_UNKNOWN_ROBOTS
            ? `${id} is advertised but the site does not name it: ignored (further ones are only counted)`
            : `${id} is advertised but the site does not name it: ignored`,
        );
      }
    }
    this.unknownAdvertised = new Set(unknown);
    for (const id of outside) {
      if (this.outsideAdvertised.has(id)) continue;
      this.ignoredOutsideSubnets++;
      this.log.warn(
        { peer: id },
        `${id} is advertised only at addresses outside the site's subnets: ignored`,
      );
    }
    this.outsideAdvertised = new Set(outside);
  }

  /**
   * refreshSiteView reads the membership and the subnets the site log committed last, after site
   * entries commit: robot add|remove and site apply change the learners without a restart.
   */
  private async refreshSiteView(): Promise<void> {
    const [{ newestCommittedMembers }, { newestCommittedSpec }] = await Promise.all([
      membersLog(),
      specLog(),
    ]);
    const c = this.election.context;
    const members = newestCommittedMembers(c.log, c.commitIndex);
    const spec = newestCommittedSpec(c.log, c.commitIndex);
    const subnets = siteSubnets(spec?.text ?? null);
    if (members?.digest !== this.committedMembers?.digest)
      this.log.info(
        { membersVersion: members?.version, workers: members?.workers },
        `the site's membership is version ${members?.version} (${members?.workers.length} workers)`,
      );
    this.committedMembers = members;
    this.subnets = subnets;
    this.updateLearners();
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
    this.schedulesEpoch = null;
    clearInterval(this.snapshotTimer);
    this.snapshotTimer = undefined;
    clearTimeout(this.replicaTimer);
    this.replicaTimer = undefined;
    this.replicaSyncWanted = false;
  }

  /**
   * startReplicas: while this robot serves, keep its datastore's replicas on the live voters, the
   * ones longest alive first (a voter that flaps should not be the standby). Checked when serving
   * starts, whenever a voter dies or comes back (syncReplicasNow), after a failed check within
   * REPLICA_RETRY_MS, and otherwise every REPLICA_SYNC_MS (AgentDeps.replicaSync in tests).
   */
  private startReplicas(): void {
    if (!this.deps.runtime.syncReplicas) return;
    clearTimeout(this.replicaTimer);
    this.replicaTimer = undefined;
    this.syncReplicasNow();
  }

  /** syncReplicasNow runs a replica check now, or right after the one running; it schedules the next. */
  private syncReplicasNow(): void {
    const rt = this.deps.runtime;
    const epoch = this.election.context.serverEpoch;
    // Only the serving epoch's schedule runs; it stops with stopSnapshots.
    if (!rt.syncReplicas || epoch === null || this.schedulesEpoch !== epoch) return;
    if (this.syncingReplicas) {
      this.replicaSyncWanted = true;
      return;
    }
    clearTimeout(this.replicaTimer);
    const next = (ms: number) => {
      this.replicaTimer = setTimeout(() => this.syncReplicasNow(), ms);
      this.replicaTimer.unref?.();
    };
    if (phaseOf(this.lifecycle) !== 'leading.serving') {
      // Applying the site: this turn is skipped, not the schedule.
      next(this.replicaSync.retryMs);
      return;
    }
    const live = this.cfg.voters
      .filter((v) => this.isReplicaCandidate(v))
      .flatMap((id) => {
        const m = this.membership.get(id);
        const host = this.addressOf(id);
        return m && m.state !== 'dead' && host
          ? [{ id, host, since: m.state === 'alive' ? m.since : Infinity }]
          : [];
      })
      .sort((a, b) => a.since - b.since || (a.id < b.id ? -1 : 1));
    this.syncingReplicas = true;
    rt.syncReplicas(
      epoch,
      live.map(({ id, host }) => ({ id, host })),
    )
      .then(
        () => ({ ok: true }),
        (e: Error) => {
          this.noteError(`replicas: ${e.message}`);
          return { ok: false };
        },
      )
      .then(({ ok }) => {
        this.syncingReplicas = false;
        if (this.replicaSyncWanted) {
          this.replicaSyncWanted = false;
          this.syncReplicasNow();
        } else if (this.schedulesEpoch === epoch)
          next(ok ? this.replicaSync.idleMs : this.replicaSync.retryMs);
      });
  }

  /** reportReplica tells the election where this robot's replica is, when it moved. */
  private reportReplica(): void {
    const p = this.deps.runtime.replicaPosition?.() ?? null;
    const epoch = p?.epoch ?? 0;
    const revision = p?.revision ?? 0;
    const known = this.election.context.replica;
    if (known.epoch !== epoch || known.revision !== revision)
      this.feed({ type: 'setReplica', epoch, revision, now: this.now() });
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
          const host = this.addressOf(id);
          return host ? [{ id, host }] : [];
        });
      const kept = rt.shipSnapshot ? await rt.shipSnapshot(record.name, to) : [];
      const data = encodeLogRecord(record);
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

  /**
   * addressOf: where a peer is reached, as its one owner, the transport, has it: the address the
   * peer's own authenticated datagrams came from, else the latest hint (seed or advertisement).
   * The leader a worker joins, the voters that get snapshots and replicas, and the leader address
   * an operator is sent to all read it here.
   */
  private addressOf(id: NodeId): string | null {
    // The transport's: once an authenticated datagram of the peer's confirmed incarnation gave it,
    // no seed or advertisement (mDNS is unauthenticated) moves it again; until then, the latest hint.
    return this.deps.transport.peerAddress(id)?.host ?? null;
  }

  /** site: the robot's LeaderSite, loaded on first use; a load that failed is tried again next time. */
  private site(): Promise<LeaderSite> {
    return (this.leaderSite ??= (async () => {
      const specs = this.deps.siteSpecs;
      if (!specs)
        throw new EdgeError(
          'SITE_SPECS_UNAVAILABLE',
          `${this.nodeId} has no site spec parser to apply the site with`,
          {
            hint: 'run the agent through its entry (agent/run.ts), which gives it one',
          },
        );
      const { LeaderSite } = await import('./site/leader-site.ts');
      return new LeaderSite({
        nodeId: this.nodeId,
        log: this.log,
        load: (text, source) => specs.load(text, source),
      });
    })().catch((e: unknown) => {
      this.leaderSite = undefined;
      throw e;
    }));
  }

  /**
   * applySite: the leader applies the newest spec committed in the site log to the server it
   * serves for `epoch`. While the log holds none, it applies the spec installed with it and
   * proposes that as version 1, so that every later leader applies the same spec, whatever its own
   * file says. The installed file is read at each try: a broken one fails the apply, and the
   * lifecycle retries once it is fixed.
   */
  private async applySite(epoch: number): Promise<void> {
    const s = await specLog();
    const { newestCommittedSpec, specDigest, highestSpecVersion } = s;
    const c = this.election.context;
    const committed = newestCommittedSpec(c.log, c.commitIndex);
    const local = committed ? null : this.deps.siteSpecs ? await this.deps.siteSpecs.local() : null;
    const spec = committed ?? (local === null ? null : { text: local, version: 0 });
    if (spec) {
      // Refused unless this robot serves `epoch`: a demoted leader writes nothing.
      const server = await this.deps.runtime.siteServer(epoch);
      // A reconcile keeps the taints of the robots this leader holds lost; a new epoch holds none.
      await (await this.site()).apply(server, epoch, spec, { stillLost: new Set(this.lostNodes) });
    } else {
      // No spec anywhere (test sites only): nothing to write, and no API client to load for it.
      const server = this.deps.runtime.status().server;
      if (server?.epoch !== epoch || server.state !== 'serving')
        throw new EdgeError('NO_SERVER', `${this.nodeId} serves no server of epoch ${epoch}`);
      this.log.warn(
        { epoch },
        `${this.nodeId} has no site spec: it writes no site objects for epoch ${epoch}`,
      );
    }
    this.siteApplied(epoch);
    if (committed) {
      this.appliedSpec = { version: committed.version, digest: committed.digest, epoch };
      this.log.info(
        { epoch, specVersion: committed.version, specIndex: committed.index, digest: committed.digest },
        `${this.nodeId} applied site spec version ${committed.version} (term ${committed.term}, index ${committed.index}) for epoch ${epoch}`,
      );
      return;
    }
    this.appliedSpec = { version: 0, digest: local === null ? '' : specDigest(local), epoch };
    const now = this.election.context;
    if (local !== null && roleOf(this.election) === 'leader' && highestSpecVersion(now.log) === 0) {
      const proposed = this.proposeSpec(s, 1, local);
      if (proposed)
        this.log.info(
          { epoch, specIndex: proposed.index },
          `${this.nodeId} proposed its installed site spec as version 1 at term ${proposed.term}`,
        );
    }
  }

  /** siteApplied records `epoch` as applied if its server still serves (a stop may have raced the apply). */
  private siteApplied(epoch: number): void {
    const server = this.deps.runtime.status().server;
    if (server?.epoch === epoch && server.state === 'serving') this.siteAppliedEpoch = epoch;
  }

  /** reapplyIfBehind: a serving leader whose applied spec is not the newest committed one applies again. */
  private async reapplyIfBehind(): Promise<void> {
    if (phaseOf(this.lifecycle) !== 'leading.serving') return;
    const { newestCommittedSpec } = await specLog();
    if (phaseOf(this.lifecycle) !== 'leading.serving') return;
    const c = this.election.context;
    const newest = newestCommittedSpec(c.log, c.commitIndex);
    if (newest && newest.digest !== this.appliedSpec?.digest)
      this.feedLifecycle({ type: 'reconcile', now: this.now() });
  }

  private onSiteEntriesCommitted(): void {
    const c = this.election.context;
    for (const [doc, p] of this.pending)
      if (c.commitIndex >= p.index)
        this.settlePending(
          doc,
          c.log[p.index - 1]?.term === p.term
            ? null
            : new EdgeError(
                DOCUMENTS[doc].code,
                `${DOCUMENTS[doc].name} version ${p.version} was overwritten`,
              ),
        );
    void this.reapplyIfBehind();
  }

  private settlePending(doc: SiteDocument, err: EdgeError | null): void {
    const p = this.pending.get(doc);
    this.pending.delete(doc);
    p?.done(err);
  }

  /**
   * awaitCommit resolves once the proposal whose manifest is at `proposed` commits, and rejects when
   * it is overwritten, the leadership moves, the agent stops, or it takes too long.
   */
  private awaitCommit(
    doc: SiteDocument,
    proposed: { readonly index: number; readonly term: number },
    version: number,
    digest: string,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          this.settlePending(
            doc,
            new EdgeError(
              DOCUMENTS[doc].code,
              `${DOCUMENTS[doc].name} version ${version} did not commit in time`,
              {
                hint: `a majority of voters is not reachable; check ${DOCUMENTS[doc].check} later`,
              },
            ),
          ),
        Math.max(5_000, 4 * this.cfg.effectiveTiming.electionTimeoutMaxMs),
      );
      this.pending.set(doc, {
        ...proposed,
        version,
        digest,
        done: (err) => {
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        },
      });
      // Committed within the proposing step already (a single voter).
      if (this.election.context.commitIndex >= proposed.index) this.settlePending(doc, null);
    });
  }

  /** proposeSpec appends one version of a document (its parts and manifest) to the log, or returns null. */
  private proposeSpec(
    { specEntries }: SpecLog,
    version: number,
    text: string,
    doc: SiteDocument = 'site',
  ): { index: number; term: number } | null {
    const before = this.election.context.log.length;
    const term = this.election.context.term;
    const datas = specEntries(
      version,
      text,
      isoTime(wallClockMs()),
      this.cfg.effectiveTiming.maxEntryBytes,
      doc,
    );
    for (const data of datas) this.feed({ type: 'propose', kind: 'site', data, now: this.now() });
    const log = this.election.context.log;
    // All or nothing: the entries go in within one synchronous run, so only a refusal cuts it short.
    if (log.length !== before + datas.length || this.election.context.term !== term) return null;
    return { index: log.length, term };
  }

  /**
   * applySiteRequest handles an operator's proposal. A robot that does not lead names the leader.
   * The leader checks the tag (before parsing anything), the spec, and that the operator diffed
   * against the committed version; then it proposes the new version and resolves once that
   * version is committed. It applies it at once (reapplyIfBehind).
   */
  async applySiteRequest(req: SiteApplyRequest): Promise<SiteApplyOutcome> {
    const c = this.election.context;
    if (roleOf(this.election) !== 'leader') {
      if (c.leader === null)
        throw new EdgeError('NO_LEADER', `the site has no leader now (${this.nodeId} at term ${c.term})`, {
          hint: 'wait for an election (edgectl status), then apply again',
        });
      return { kind: 'notLeader', leader: c.leader, leaderAddress: this.addressOf(c.leader) };
    }
    const operatorKeys = this.deps.operatorKeys?.() ?? [];
    if (operatorKeys.length === 0 || !this.deps.siteSpecs)
      throw new EdgeError('SITE_APPLY_UNAVAILABLE', `${this.nodeId} cannot accept site specs`, {
        hint: 'this agent holds no operator key (a worker, or a test runtime) or no site spec parser',
      });
    const s = await specLog();
    const { specDigest, newestCommittedSpec, highestSpecVersion } = s;
    const { verifySiteApply } = await import('./operator-auth.ts');
    const claim = { site: this.cfg.site.id, baseVersion: req.baseVersion, digest: specDigest(req.spec) };
    if (req.site !== this.cfg.site.id || !operatorKeys.some((key) => verifySiteApply(key, claim, req.mac)))
      throw new EdgeError(
        'SITE_APPLY_UNAUTHENTICATED',
        `the site apply request is not signed with this site's operator key`,
        {
          hint: `sign it with the key of site ${this.cfg.site.id} (edgectl site apply --site-key)`,
        },
      );
    if (phaseOf(this.lifecycle) !== 'leading.serving' || this.election.context.serverEpoch === null)
      throw new EdgeError('LEADER_NOT_READY', `${this.nodeId} leads term ${c.term} but does not serve yet`, {
        hint: 'apply again in a few seconds',
      });
    const text = await this.deps.siteSpecs.validate(req.spec, this.cfg.site.id);
    const e = this.election.context;
    if (roleOf(this.election) !== 'leader' || e.term !== c.term)
      throw new EdgeError('SITE_APPLY_NOT_COMMITTED', `${this.nodeId} lost its leadership meanwhile`, {
        hint: 'apply again',
      });
    const committed = newestCommittedSpec(e.log, e.commitIndex);
    const base = committed?.version ?? 0;
    if (this.pending.has('site') || highestSpecVersion(e.log) > base)
      throw new EdgeError('SITE_APPLY_BUSY', 'another site spec version is being committed', {
        hint: 'wait a second, check edgectl site history, then apply again',
      });
    if (req.baseVersion !== base)
      throw new EdgeError(
        'SITE_SPEC_CONFLICT',
        `the committed site spec is version ${base}, not ${req.baseVersion} as the request assumes`,
        { hint: 'someone changed the site meanwhile: look at edgectl site history and apply again' },
      );
    const digest = specDigest(text);
    if (committed?.digest === digest) return { kind: 'unchanged', version: base, digest };
    const version = base + 1;
    // Synchronous from the checks above to the proposal: no other request can slip in between.
    const proposed = this.proposeSpec(s, version, text);
    if (!proposed)
      throw new EdgeError(
        'SITE_APPLY_NOT_COMMITTED',
        `${this.nodeId} could not append site spec version ${version}`,
        {
          hint: 'the leadership is moving; apply again in a few seconds',
        },
      );
    this.log.info(
      { specVersion: version, specIndex: proposed.index, digest },
      `${this.nodeId} proposed site spec version ${version} at term ${proposed.term}`,
    );
    await this.awaitCommit('site', proposed, version, digest);
    return { kind: 'committed', version, term: proposed.term, index: proposed.index, digest };
  }

  /**
   * applyMembersRequest handles an operator's new membership (edgectl robot add|remove): the robots
   * the site names that do not vote. Like a spec: a robot that does not lead names the leader; the
   * leader checks the tag first, then that the operator started from the committed version, then
   * proposes the new version and resolves once it is committed. Every voter's learners follow it
   * from then on, and so does every later leader's.
   */
  async applyMembersRequest(req: MembersRequest): Promise<MembersOutcome> {
    const c = this.election.context;
    if (roleOf(this.election) !== 'leader') {
      if (c.leader === null)
        throw new EdgeError('NO_LEADER', `the site has no leader now (${this.nodeId} at term ${c.term})`, {
          hint: 'wait for an election (edgectl status), then try again',
        });
      return { kind: 'notLeader', leader: c.leader, leaderAddress: this.addressOf(c.leader) };
    }
    const operatorKeys = this.deps.operatorKeys?.() ?? [];
    if (operatorKeys.length === 0)
      throw new EdgeError('MEMBERS_UNAVAILABLE', `${this.nodeId} cannot accept membership changes`, {
        hint: 'this agent holds no operator key (a worker, or a test runtime)',
      });
    const [m, s, { verifyMembers }] = await Promise.all([
      membersLog(),
      specLog(),
      import('./operator-auth.ts'),
    ]);
    const workers = Array.isArray(req.workers) ? req.workers : [];
    const text = m.membersText(workers.filter((w) => typeof w === 'string'));
    const digest = s.specDigest(text);
    const claim = { site: this.cfg.site.id, baseVersion: req.baseVersion, digest };
    if (req.site !== this.cfg.site.id || !operatorKeys.some((key) => verifyMembers(key, claim, req.mac)))
      throw new EdgeError(
        'MEMBERS_UNAUTHENTICATED',
        `the membership request is not signed with this site's operator key`,
        {
          hint: `sign it with the key of site ${this.cfg.site.id} (edgectl robot add|remove do)`,
        },
      );
    const parsed = m.parseMembersText(text);
    const votes = parsed?.filter((w) => this.voters().includes(w)) ?? [];
    if (!parsed || votes.length > 0)
      throw new EdgeError(
        'MEMBERS_INVALID',
        parsed
          ? `${votes.join(', ')} vote: the membership lists the robots that do not`
          : 'a worker is not a node id',
        { hint: 'list the inventory robots that are neither voters nor witnesses' },
      );
    const e = this.election.context;
    if (roleOf(this.election) !== 'leader' || e.term !== c.term)
      throw new EdgeError('MEMBERS_NOT_COMMITTED', `${this.nodeId} lost its leadership meanwhile`, {
        hint: 'try again',
      });
    const committed = m.newestCommittedMembers(e.log, e.commitIndex);
    const base = committed?.version ?? 0;
    if (this.pending.has('members') || s.highestSpecVersion(e.log, 'members') > base)
      throw new EdgeError('MEMBERS_BUSY', 'another membership version is being committed', {
        hint: 'wait a second, then try again',
      });
    if (req.baseVersion !== base)
      throw new EdgeError(
        'MEMBERS_CONFLICT',
        `the committed membership is version ${base}, not ${req.baseVersion} as the request assumes`,
        { hint: 'someone changed the membership meanwhile: run the command again' },
      );
    if (committed?.digest === digest) return { kind: 'unchanged', version: base, digest };
    const version = base + 1;
    // Synchronous from the checks above to the proposal: no other request can slip in between.
    const proposed = this.proposeSpec(s, version, text, 'members');
    if (!proposed)
      throw new EdgeError(
        'MEMBERS_NOT_COMMITTED',
        `${this.nodeId} could not append membership version ${version}`,
        {
          hint: 'the leadership is moving; try again in a few seconds',
        },
      );
    this.log.info(
      { membersVersion: version, membersIndex: proposed.index, workers: parsed },
      `${this.nodeId} proposed site membership version ${version} at term ${proposed.term}`,
    );
    await this.awaitCommit('members', proposed, version, digest);
    return { kind: 'committed', version, term: proposed.term, index: proposed.index, digest };
  }

  /** membersView: the membership in force as this robot knows it, and who leads. */
  async membersView(): Promise<MembersView> {
    const m = await membersLog();
    const c = this.election.context;
    const committed = m.newestCommittedMembers(c.log, c.commitIndex);
    return {
      node: this.nodeId,
      site: this.cfg.site.id,
      leader: c.leader,
      leaderAddress: c.leader === null || c.leader === this.nodeId ? null : this.addressOf(c.leader),
      committed,
      config: this.cfg.workers,
    };
  }

  /** siteView: the committed spec as this robot knows it, and who leads. */
  async siteView(): Promise<SiteView> {
    const { newestCommittedSpec } = await specLog();
    const c = this.election.context;
    return {
      node: this.nodeId,
      site: this.cfg.site.id,
      leader: c.leader,
      leaderAddress: c.leader === null ? null : c.leader === this.nodeId ? null : this.addressOf(c.leader),
      commitIndex: c.commitIndex,
      committed: newestCommittedSpec(c.log, c.commitIndex),
      applied: roleOf(this.election) === 'leader' ? this.appliedSpec : null,
    };
  }

  /** siteHistory: every committed version, oldest first, each with what changed from the one before. */
  async siteHistory(): Promise<SiteHistoryEntry[]> {
    const { committedSpecs, diffSpecs, formatChange } = await specLog();
    const c = this.election.context;
    let previous: string | null = null;
    return committedSpecs(c.log, c.commitIndex).map((v) => {
      const changes =
        previous === null ? ['first version in the site log'] : diffSpecs(previous, v.text).map(formatChange);
      previous = v.text;
      return { version: v.version, term: v.term, index: v.index, digest: v.digest, at: v.at, changes };
    });
  }

  /**
   * actOnNodeLoss: the serving leader marks robots lost past the grace period, and back again,
   * with its LeaderSite on the server it serves, following the spec it applied last.
   */
  private actOnNodeLoss(): void {
    const epoch = this.lifecycle.context.serverEpoch;
    if (phaseOf(this.lifecycle) !== 'leading.serving' || epoch === null || this.siteAppliedEpoch !== epoch)
      return;
    // A site without a spec (test sites only) has no node-loss settings and no objects to change.
    if (!this.appliedSpec?.digest) return;
    const d = nodeLossChanges(this.membership, this.now(), this.cfg.membership.lostAfterMs, this.lostNodes);
    const onSite = async (act: (site: LeaderSite, server: ObjectClient) => Promise<unknown>) =>
      act(await this.site(), await this.deps.runtime.siteServer(epoch));
    for (const id of d.lost) {
      this.lostNodes.add(id);
      onSite((site, server) => site.markNodeLost(server, id)).then(
        () => this.log.warn({ peer: id }, `${id} is lost: its Node is out of service, its IPs freed`),
        (e: Error) => {
          this.lostNodes.delete(id); // retried on the next evaluation
          this.noteError(`mark ${id} lost: ${e.message}`);
        },
      );
    }
    for (const id of d.returned) {
      this.lostNodes.delete(id);
      onSite((site, server) => site.markNodeReturned(server, id)).then(
        () => this.log.info({ peer: id }, `${id} is back: out-of-service taint removed`),
        (e: Error) => {
          this.lostNodes.add(id);
          this.noteError(`mark ${id} returned: ${e.message}`);
        },
      );
    }
  }

  private evaluateMembership(): void {
    const now = this.now();
    const r = evaluate(this.membership, now, this.cfg.membership);
    this.membership = r.view;
    for (const c of r.changes)
      this.log.warn({ peer: c.id, from: c.from, to: c.to }, `peer ${c.id} is ${c.to}`);
    // A dead worker may come back with a new DHCP lease and speaks only when spoken to: its
    // advertisement is where it is found again (Transport.releasePeer). Voters find the leader.
    const released = r.changes.filter((c) => c.to === 'dead' && !this.voters().includes(c.id));
    for (const c of released) this.deps.transport.releasePeer(c.id);
    if (released.length > 0) this.updateLearners();
    const q = this.quorum(now);
    if (!q.ok && this.noQuorumSince === null) {
      this.noQuorumSince = wallClockMs();
      this.log.warn(
        { reachable: q.reachable, voters: q.voters },
        `${this.nodeId} has no quorum: ${q.reachable} of ${q.voters} voters reachable`,
      );
    } else if (q.ok && this.noQuorumSince !== null) {
      this.noQuorumSince = null;
      this.log.info({ reachable: q.reachable, voters: q.voters }, `${this.nodeId} sees a quorum again`);
    }
    this.actOnNodeLoss();
    this.reportReplica();
    // A voter that died may have held the standby (one that comes back is seen in onMessage).
    if (r.changes.some((c) => c.to === 'dead' && this.isReplicaCandidate(c.id))) this.syncReplicasNow();
  }

  /** isReplicaCandidate: a voter that can hold this leader's standby replica (no witness, not itself). */
  private isReplicaCandidate(id: NodeId): boolean {
    return id !== this.nodeId && this.cfg.voters.includes(id) && !this.cfg.witnesses.includes(id);
  }

  private quorum(now: number): QuorumView {
    return quorumView({
      self: this.nodeId,
      voters: this.voters(),
      view: this.membership,
      liveLeader: liveLeader(this.election, now),
    });
  }

  private discoveryCounters(): Record<string, number> {
    return {
      ...discoveryCounters(this.deps.discovery),
      ignoredUnknownRobots: this.ignoredUnknownRobots,
      ignoredOutsideSubnets: this.ignoredOutsideSubnets,
    };
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
    const ids = new Set<NodeId>([...this.membership.keys(), ...this.advertised.map((p) => p.nodeId)]);
    ids.delete(this.nodeId);
    const leader = liveLeader(this.election, now);
    const q = this.quorum(now);
    const cp = this.deps.runtime.status();
    return {
      node: this.nodeId,
      site: this.cfg.site.id,
      role: roleOf(this.election),
      voter: this.voters().includes(this.nodeId),
      witness: this.isWitness(),
      term: c.term,
      // Only a leader this robot can vouch for now; the last one it remembers may be gone.
      leader,
      quorum: {
        ...q,
        noQuorumSince: q.ok || this.noQuorumSince === null ? null : isoTime(this.noQuorumSince),
      },
      commitIndex: c.commitIndex,
      lifecycle: phaseOf(this.lifecycle),
      controlPlane: {
        runtime: this.deps.runtime.kind,
        ...cp,
        siteAppliedEpoch:
          cp.server?.state === 'serving' && cp.server.epoch === this.siteAppliedEpoch
            ? this.siteAppliedEpoch
            : null,
        // A worker whose leader nobody vouches for cannot reach its server, whatever it last saw.
        worker:
          cp.worker && leader !== cp.worker.leader
            ? { ...cp.worker, state: 'server unreachable' }
            : cp.worker,
      },
      members: [...ids].sort().map((id) => {
        const m = this.membership.get(id);
        const p = this.advertised.find((x) => x.nodeId === id);
        // Only the leader hears every robot. A follower that has not heard another follower lately
        // knows nothing about it: that is "not heard", not "dead".
        const hearsIt = roleOf(this.election) === 'leader' || id === c.leader;
        const state: ReportedMemberState = !m || (m.state !== 'alive' && !hearsIt) ? 'not-heard' : m.state;
        return {
          id,
          state,
          lastHeardAgoMs: m ? Math.round(now - m.lastHeardMs) : null,
          rttMs: m?.rttMs == null ? null : Math.round(m.rttMs * 10) / 10,
          voter: this.voters().includes(id),
          witness: this.isWitness(id),
          addresses: [
            ...new Set([
              ...(this.deps.transport.peerAddress(id) ? [this.deps.transport.peerAddress(id)!.host] : []),
              ...(p?.addresses ?? []),
            ]),
          ],
        };
      }),
      lastErrors: [...this.lastErrors],
      transport: this.deps.transport.stats(),
      ...(this.deps.keys ? { keys: this.deps.keys() } : {}),
      discovery: this.discoveryCounters(),
      learners: {
        membersVersion: this.committedMembers?.version ?? null,
        learners: c.learners,
      },
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
      // To the standby when it is alive: it holds the datastore up to the last write, where any
      // other voter would restore a snapshot.
      const standby = this.deps.runtime.standby?.() ?? null;
      const to = standby && this.membership.get(standby)?.state === 'alive' ? standby : undefined;
      this.feed({ type: 'transferLeadership', ...(to ? { to } : {}), now: this.now() });
      const deadline = this.now() + this.cfg.effectiveTiming.transferTimeoutMs;
      while (roleOf(this.election) === 'leader' && this.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
    }
    clearInterval(this.membershipTimer);
    this.stopSnapshots();
    for (const doc of [...this.pending.keys()])
      this.settlePending(doc, new EdgeError(DOCUMENTS[doc].code, `${this.nodeId} is stopping`));
    this.driver.cancelTimers();
    for (const id of [...this.timers.keys()]) this.disarm(id);
    await this.deps.discovery.close();
    const epoch = this.election.context.serverEpoch;
    if (epoch !== null) await this.deps.runtime.stopServer(epoch).catch(() => {});
    await this.deps.transport.close();
    this.log.info('agent stopped');
  }
}
