/**
 * The Raft-lite election statechart: who runs the site's k3s server (docs/protocol.md).
 *
 *            ┌──────── electionTimeout (no leader heard for the randomized timeout) ───────┐
 *            │                                                                            ▼
 *   ┌──────────┐  preVote quorum   ┌───────────┐ vote quorum  ┌──────────────────────────────────┐
 *   │ follower │◀──────────────────│preCandidate│────────────▶│candidate │──────────────▶│ leader │
 *   └──────────┘  lost / leader    └───────────┘              └──────────┘               │establishing→serving
 *        ▲          heard / higher term                                                  │  ⇄ transferring → handingOff
 *        └──────────────────────────── higher term / CheckQuorum failed ──────────────────┘
 *
 * It is pure: no I/O, no clock, no randomness of its own. Every event carries `now`, the shell's
 * monotonic clock in ms; the PRNG state lives in context. Effects come out as named actions, in the
 * order the shell must run them (persistHardState, persistLog, stopServer, send, startServer,
 * commit, leaderChanged, proposalRejected, trace), plus `xstate.raise` with a delay (arm a timer;
 * a later one with the same id replaces it) and `xstate.cancel` (disarm). The shell delivers a timer
 * event with `now` set to the time it fires. `stepElection` below wraps this for shells.
 *
 * Safety comes from Raft's rules (one vote per term, persisted before replying; log up-to-date check;
 * leaders commit only entries of their own term). Liveness and "no false failovers" come from
 * PreVote, leader stickiness and CheckQuorum. Server epochs are fenced: see docs/protocol.md §5.
 */
import { and, assign, enqueueActions, initialTransition, raise, cancel, setup } from 'xstate';
import type { EntryKind, LogEntry, Message, NodeId } from './messages.ts';
import { pureStepper } from './pure-transition.ts';
import { nextRandom } from './rng.ts';
import {
  conflictHint,
  entriesFrom,
  entryBytes,
  isUpToDate,
  lastIndex,
  lastTerm,
  mergeEntries,
  quorumMatch,
  termAt,
} from './site-log.ts';
import { fenceDelayMs, type ElectionTiming } from './timing.ts';

/** Progress is the leader's view of one follower or learner. */
export interface Progress {
  /** Highest index known to be replicated on the peer. */
  readonly match: number;
  /** Next index to send. Only advanced by acknowledgements, so a lost Append is simply re-sent. */
  readonly next: number;
  /** Highest `sentAt` the peer echoed: the leader's lease for this peer is measured from it. */
  readonly lastAck: number;
}

export type ServerOp = { readonly op: 'start' | 'stop'; readonly epoch: number; readonly reason: string };

/** Effects staged by this transition; `emitEffects` turns them into actions and empties them. */
export interface StagedEffects {
  readonly hardState: boolean;
  readonly logFrom: number | null;
  readonly server: readonly ServerOp[];
  readonly sends: readonly Message[];
  readonly rejected: string | null;
  readonly traces: readonly string[];
}

const NO_EFFECTS: StagedEffects = {
  hardState: false,
  logFrom: null,
  server: [],
  sends: [],
  rejected: null,
  traces: [],
};

export interface ElectionContext {
  readonly id: NodeId;
  /** Server-capable robots from the site config (≤ 7). Only they vote and campaign. */
  readonly voters: readonly NodeId[];
  /** Every other member: follows the leader, never votes. */
  readonly learners: readonly NodeId[];
  /**
   * Voters that vote but never campaign or lead (a tie-breaker without a server: the third vote of a
   * two-robot site). They keep the site log like any voter, since a vote is only safe from a voter
   * that holds every committed entry.
   */
  readonly witnesses: readonly NodeId[];
  readonly timing: ElectionTiming;
  /** 0..1: battery, storage and CPU folded into one number by the shell. Biases the timeout only. */
  readonly fitness: number;
  /**
   * The position of this robot's datastore replica (agent/control-plane/replica.ts), as the shell
   * last reported it: (0, 0) for none. Campaigns carry it; a voter refuses a candidate whose log is
   * only as up to date as its own and whose replica is behind its own, so the freshest replica wins
   * when it is reachable (docs/k3s.md "Replication").
   */
  readonly replica: { readonly epoch: number; readonly revision: number };
  /**
   * The replica positions other voters campaigned with, and the term of that campaign. A new leader
   * whose own replica is older than a live voter's, from this election, hands leadership to that
   * voter before it serves: the voter with the newer site log must win (Raft), but the one with
   * the newer datastore should serve.
   */
  readonly peerReplicas: Readonly<
    Record<NodeId, { readonly epoch: number; readonly revision: number; readonly term: number }>
  >;

  // Durable: persisted (persistHardState / persistLog) before any message that depends on them.
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly log: readonly LogEntry[];

  // Volatile.
  readonly commitIndex: number;
  readonly leader: NodeId | null;
  /** When this node last heard from a live leader of its term (or, as leader, confirmed its quorum). */
  readonly lastLeaderContactAt: number | null;
  /** Start of the current election-timeout period. */
  readonly electionResetAt: number;
  /** The randomized follower election timeout drawn for this period. */
  readonly electionTimeoutMs: number;
  /** The randomized (pre)campaign retry timeout drawn for this round. */
  readonly retryMs: number;
  readonly rng: number;
  /** (Pre)votes received in the current (pre)campaign: true granted, false refused. */
  readonly votes: Readonly<Record<NodeId, boolean>>;
  /** The campaign was started by TimeoutNow: its votes bypass stickiness. */
  readonly campaignTransfer: boolean;
  readonly progress: Readonly<Record<NodeId, Progress>>;
  /** Heartbeats sent in this leadership; learners get every k-th. */
  readonly beats: number;
  readonly becameLeaderAt: number;
  readonly noopIndex: number;
  /** The epoch (term) whose server this node runs, or null. */
  readonly serverEpoch: number | null;
  readonly transferee: NodeId | null;
  /**
   * The last AppendResp this robot sent as a follower: to whom, at which term, when and with which
   * matchIndex. A heartbeat that changes nothing is answered only every ackIntervalMs.
   */
  readonly lastReply: LastReply | null;
  /** When this follower last found a heartbeat missing (a gap of 1.5 heartbeats), or null. */
  readonly heartbeatGapAt: number | null;
  /** False until the first follower period began: the first one uses the short boot timeout. */
  readonly started: boolean;
  /** The current election timeout is the short boot one (until a leader is heard). */
  readonly bootTimeout: boolean;

  /** What the shell was last told: leaderChanged and commit are emitted on change. */
  readonly reported: { readonly leader: NodeId | null; readonly term: number; readonly commit: number };
  readonly fx: StagedEffects;
}

export interface LastReply {
  readonly to: NodeId;
  readonly term: number;
  readonly at: number;
  readonly matchIndex: number;
}

/** The durable part of the context, as the shell stores it. */
export interface DurableState {
  readonly term: number;
  readonly votedFor: NodeId | null;
  readonly log: readonly LogEntry[];
}

export interface ElectionInput {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly learners?: readonly NodeId[];
  /** Voters (listed in `voters` too) that never campaign or lead. */
  readonly witnesses?: readonly NodeId[];
  readonly timing: ElectionTiming;
  /** Seed of the context PRNG. */
  readonly seed: number;
  readonly fitness?: number;
  /** What the node persisted before it last stopped; absent on first boot. */
  readonly durable?: DurableState;
  /** The shell's monotonic clock at start, ms. */
  readonly now: number;
}

type WithNow = { readonly now: number };
export type ElectionEvent =
  | ({ readonly type: 'message'; readonly msg: Message } & WithNow)
  | ({ readonly type: 'electionTimeout' } & WithNow)
  | ({ readonly type: 'heartbeatTimeout' } & WithNow)
  | ({ readonly type: 'transferTimeout' } & WithNow)
  | ({ readonly type: 'fenceElapsed' } & WithNow)
  /** Campaign now (operator or test harness; like etcd's MsgHup). Still goes through PreVote. */
  | ({ readonly type: 'campaign' } & WithNow)
  /** Hand leadership to `to`, or to the most up-to-date voter (planned shutdown, low battery). */
  | ({ readonly type: 'transferLeadership'; readonly to?: NodeId } & WithNow)
  /** Append a site log entry (leader only). */
  | ({ readonly type: 'propose'; readonly kind: EntryKind; readonly data: string } & WithNow)
  | ({ readonly type: 'setLearners'; readonly learners: readonly NodeId[] } & WithNow)
  | ({ readonly type: 'setFitness'; readonly fitness: number } & WithNow)
  | ({ readonly type: 'setReplica'; readonly epoch: number; readonly revision: number } & WithNow);

/** The timer ids the machine arms. Arming an id replaces its pending timer. */
export type TimerId = 'election' | 'heartbeat' | 'transfer' | 'fence';

// ---------------------------------------------------------------------------------------------
// Pure helpers over the context.

const NO_REPLICA_POSITION = { epoch: 0, revision: 0 } as const;

/** The replica fields of this node's (pre)vote requests: none while it holds no replica. */
function replicaFields(c: ElectionContext): { replicaEpoch?: number; replicaRev?: number } {
  return c.replica.epoch === 0 && c.replica.revision === 0
    ? {}
    : { replicaEpoch: c.replica.epoch, replicaRev: c.replica.revision };
}

/** notePeerReplica: remember the replica position a (pre)candidate campaigned with, or a follower acknowledged with. */
function notePeerReplica(
  c: ElectionContext,
  m: Msg<'preVote'> | Msg<'vote'> | Msg<'appendResp'>,
): ElectionContext['peerReplicas'] {
  if (!c.voters.includes(m.from)) return c.peerReplicas;
  return {
    ...c.peerReplicas,
    [m.from]: { epoch: m.replicaEpoch ?? 0, revision: m.replicaRev ?? 0, term: m.term },
  };
}

/**
 * fresherReplicaHolder: the voter that campaigned in the election this leader won (the term it
 * leads) with the freshest replica, when that is fresher than this leader's own and the voter
 * acknowledged recently; else null.
 */
function fresherReplicaHolder(c: ElectionContext, now: number): NodeId | null {
  let best: NodeId | null = null;
  let pos: { epoch: number; revision: number } = c.replica;
  for (const v of otherVoters(c)
    .filter((x) => canLead(c, x))
    .sort()) {
    const r = c.peerReplicas[v];
    if (!r || r.term !== c.term) continue;
    if (now - (c.progress[v]?.lastAck ?? -Infinity) >= c.timing.electionTimeoutMinMs) continue;
    if (r.epoch > pos.epoch || (r.epoch === pos.epoch && r.revision > pos.revision)) {
      best = v;
      pos = r;
    }
  }
  return best;
}

/**
 * replicaBehind: the candidate's log is exactly as up to date as ours (a newer log always wins, as
 * Raft requires) and its replica is older than ours, by epoch then revision. Together with
 * isUpToDate this orders candidates by (log, replica), a total order, so the freshest candidate
 * can always win and the grants stay a subset of Raft's: safety is unchanged.
 */
function replicaBehind(c: ElectionContext, m: Msg<'preVote'> | Msg<'vote'>): boolean {
  if (m.lastTerm !== lastTerm(c.log) || m.lastIndex !== lastIndex(c.log)) return false;
  const epoch = m.replicaEpoch ?? 0;
  const rev = m.replicaRev ?? 0;
  return epoch < c.replica.epoch || (epoch === c.replica.epoch && rev < c.replica.revision);
}

const quorum = (c: ElectionContext): number => Math.floor(c.voters.length / 2) + 1;
const isVoter = (c: ElectionContext, n: NodeId = c.id): boolean => c.voters.includes(n);
/** canLead: a voter that is not a witness. Only these campaign, take a transfer or lead. */
const canLead = (c: ElectionContext, n: NodeId = c.id): boolean => isVoter(c, n) && !c.witnesses.includes(n);
const otherVoters = (c: ElectionContext): NodeId[] => c.voters.filter((v) => v !== c.id);
const members = (c: ElectionContext): NodeId[] => [
  ...otherVoters(c),
  ...c.learners.filter((l) => l !== c.id),
];
/** nowOf reads `now` from an event; xstate's own init event has none. */
const nowOf = (e: ElectionEvent | { type: string }): number | null =>
  'now' in e && typeof e.now === 'number' ? e.now : null;

function stage(c: ElectionContext, fx: Partial<StagedEffects>): StagedEffects {
  return {
    hardState: c.fx.hardState || fx.hardState === true,
    logFrom:
      fx.logFrom == null
        ? c.fx.logFrom
        : c.fx.logFrom == null
          ? fx.logFrom
          : Math.min(c.fx.logFrom, fx.logFrom),
    server: fx.server ? [...c.fx.server, ...fx.server] : c.fx.server,
    sends: fx.sends ? [...c.fx.sends, ...fx.sends] : c.fx.sends,
    rejected: fx.rejected ?? c.fx.rejected,
    traces: fx.traces ? [...c.fx.traces, ...fx.traces] : c.fx.traces,
  };
}

/** leaseActive: has this node heard a live leader (or, as leader, its quorum) within the stickiness window? */
function leaseActive(c: ElectionContext, now: number): boolean {
  return c.lastLeaderContactAt !== null && now - c.lastLeaderContactAt < c.timing.electionTimeoutMinMs;
}

/** leaseHolder names who this robot's stickiness protects, for traces. */
function leaseHolder(c: ElectionContext): string {
  return c.leader ?? 'a leader heard before this robot restarted';
}

/** NEVER is the lastAck of a peer that has not acknowledged this leadership (JSON-safe, unlike -Infinity). */
const NEVER = -1e12;

/**
 * hasLease: a majority of voters (this leader included) echoed an Append it sent within
 * leaderLeaseMs. Measured from the leader's own send times, so network delay cannot stretch it.
 */
function hasLease(c: ElectionContext, now: number): boolean {
  const echo = quorumEchoAt(c);
  return echo === Infinity || now - echo < c.timing.leaderLeaseMs;
}

/**
 * quorumEchoAt: the `sentAt` a majority of voters (this leader included) echoed: the (quorum − 1)-th
 * most recent echo of the other voters. Infinity for a single voter, which needs no one.
 */
function quorumEchoAt(c: ElectionContext): number {
  const need = quorum(c) - 1;
  if (need <= 0) return Infinity;
  const acks = otherVoters(c)
    .map((v) => c.progress[v]?.lastAck ?? NEVER)
    .sort((a, b) => b - a);
  return acks[need - 1] ?? NEVER;
}

/**
 * heartbeatDelayMs: the leader's next heartbeat interval. Normally heartbeatMs; half of it
 * - while the echo a majority gave is older than two answer intervals and a heartbeat, which a
 *   healthy link never is. That is a loss burst or a lossy link, and after a burst every follower
 *   has only electionTimeoutMinMs − burst left to hear this leader before it times out: twice the
 *   heartbeats in that window make a missed one much less likely;
 * - for the fence delay after winning: a voter that missed the first Append keeps campaigning (and
 *   may pull others to a higher term) until it hears this leader;
 * - during a leadership transfer, which re-sends its Append or TimeoutNow on this timer.
 * A healthy idle site pays nothing for any of them. Sending more often only makes a leader notice a
 * lost lease sooner, so the fence is unchanged.
 */
function heartbeatDelayMs(c: ElectionContext, now: number): number {
  const t = c.timing;
  const fast =
    c.transferee !== null ||
    now - c.becameLeaderAt < fenceDelayMs(t) ||
    now - quorumEchoAt(c) > 2 * t.ackIntervalMs + t.heartbeatMs;
  return fast ? t.heartbeatMs / 2 : t.heartbeatMs;
}

/**
 * drawElectionTimeout: min + spread × u × (1 − bias × fitness), so fitter robots tend to time out
 * first (a replica holder counts as fitness 1). Never below the minimum, so fitness cannot weaken stickiness. Right after boot the minimum
 * is bootElectionTimeoutMs.
 */
function drawElectionTimeout(c: ElectionContext, boot: boolean): { electionTimeoutMs: number; rng: number } {
  const [u, rng] = nextRandom(c.rng);
  const t = c.timing;
  const spread = t.electionTimeoutMaxMs - t.electionTimeoutMinMs;
  // A robot holding a datastore replica counts as fittest: it tends to campaign first, so every
  // voter learns its position (campaigns carry it) and the freshest replica is the one that serves.
  const fitness = c.replica.epoch > 0 || c.replica.revision > 0 ? 1 : c.fitness;
  const scale = 1 - t.fitnessBias * Math.min(1, Math.max(0, fitness));
  const min = boot ? t.bootElectionTimeoutMs : t.electionTimeoutMinMs;
  return { electionTimeoutMs: Math.round(min + spread * u * scale), rng };
}

function drawRetry(c: ElectionContext): { retryMs: number; rng: number } {
  const [u, rng] = nextRandom(c.rng);
  const t = c.timing;
  return {
    retryMs: Math.round(t.campaignRetryMinMs + (t.campaignRetryMaxMs - t.campaignRetryMinMs) * u),
    rng,
  };
}

function appendFor(c: ElectionContext, to: NodeId, now: number): Message {
  const p = c.progress[to] ?? { match: 0, next: lastIndex(c.log) + 1, lastAck: now };
  const prevIndex = p.next - 1;
  return {
    type: 'append',
    from: c.id,
    to,
    term: c.term,
    prevIndex,
    prevTerm: termAt(c.log, prevIndex) ?? 0,
    entries: entriesFrom(c.log, p.next, c.timing.maxAppendBytes),
    commit: c.commitIndex,
    sentAt: now,
  };
}

/** advanceCommit: the highest index a majority of voters holds, if it is from this leader's term. */
function advanceCommit(c: ElectionContext): Partial<ElectionContext> {
  const matches = c.voters.map((v) => (v === c.id ? lastIndex(c.log) : (c.progress[v]?.match ?? 0)));
  const n = quorumMatch(matches);
  // Raft §5.4.2: only entries of the leader's own term are committed by counting replicas.
  if (n > c.commitIndex && termAt(c.log, n) === c.term) return { commitIndex: n };
  return {};
}

function voteTally(c: ElectionContext): { granted: number; refused: number } {
  let granted = 0;
  let refused = 0;
  for (const v of c.voters) {
    const r = c.votes[v];
    if (r === true) granted++;
    else if (r === false) refused++;
  }
  return { granted, refused };
}

type Ev<T extends ElectionEvent['type']> = Extract<ElectionEvent, { type: T }>;
type Msg<T extends Message['type']> = Extract<Message, { type: T }>;
const msgOf = (e: ElectionEvent): Message | null => (e.type === 'message' ? e.msg : null);

// ---------------------------------------------------------------------------------------------
// Transitions of a settled site. A leader sends an Append to every voter each heartbeat and
// handles the replies; its followers accept those Appends. The machine's actions for these events
// are the functions below, and steadyStep (near stepElection) runs the same functions without
// xstate's interpreter for the one state each event is handled in.

/** acceptAppendUpdate: a follower or learner handles an Append of its own term (the `acceptAppend` action). */
function acceptAppendUpdate(c: ElectionContext, m: Msg<'append'>, now: number): Partial<ElectionContext> {
  // A heartbeat from the same leader that comes 1.5 intervals after the last one means one was
  // lost (or this robot was stalled): answer every heartbeat for a while (mustAnswer).
  const gap =
    c.leader === m.from &&
    c.lastLeaderContactAt !== null &&
    now - c.lastLeaderContactAt > 1.5 * c.timing.heartbeatMs;
  // Once a leader is heard, the short boot timeout is over: a normal one keeps this robot from
  // campaigning inside its own stickiness window.
  const heartbeatGapAt = gap ? now : c.heartbeatGapAt;
  const base = {
    leader: m.from,
    lastLeaderContactAt: now,
    electionResetAt: now,
    heartbeatGapAt,
    ...(c.bootTimeout ? { ...drawElectionTimeout(c, false), bootTimeout: false } : {}),
  };
  const reply = (success: boolean, matchIndex: number): Message => ({
    type: 'appendResp',
    from: c.id,
    to: m.from,
    term: c.term,
    success,
    matchIndex,
    echo: m.sentAt,
    ...replicaFields(c),
  });
  if (termAt(c.log, m.prevIndex) !== m.prevTerm) {
    return { ...base, fx: stage(c, { sends: [reply(false, conflictHint(c.log, m.prevIndex))] }) };
  }
  const merged = mergeEntries(c.log, m.prevIndex, m.entries, c.commitIndex);
  if (merged.conflictWithCommitted) {
    return {
      ...base,
      fx: stage(c, {
        traces: [
          `${c.id} INVARIANT: leader ${m.from} would overwrite committed entries at term ${c.term}; refused`,
        ],
      }),
    };
  }
  const commitIndex = Math.max(c.commitIndex, Math.min(m.commit, merged.matchIndex));
  if (!mustAnswer(c, m, merged.matchIndex, heartbeatGapAt, now)) {
    return { ...base, log: merged.log, commitIndex, fx: stage(c, { logFrom: merged.dirtyFrom }) };
  }
  return {
    ...base,
    log: merged.log,
    commitIndex,
    lastReply: { to: m.from, term: c.term, at: now, matchIndex: merged.matchIndex },
    fx: stage(c, { logFrom: merged.dirtyFrom, sends: [reply(true, merged.matchIndex)] }),
  };
}

/**
 * mustAnswer: whether a follower answers an Append it accepted. Every Append that carries entries
 * or moves the follower's matchIndex is answered, and so is the first one from a leader (at its
 * term). A plain heartbeat is answered once the last answer to that leader is ackIntervalMs old
 * (less half a heartbeat, so that arrival jitter cannot skip one more), and always while the link
 * is losing datagrams: for two answer intervals after a heartbeat went missing. A lossy link loses
 * answers too, and each lost one would leave the leader's lease a whole interval staler.
 * The leader measures its lease from the echoes it gets, so answering less only makes its lease
 * end sooner: safe, and timing.ts sizes leaderLeaseMs for it.
 */
function mustAnswer(
  c: ElectionContext,
  m: Msg<'append'>,
  matchIndex: number,
  heartbeatGapAt: number | null,
  now: number,
): boolean {
  const last = c.lastReply;
  if (m.entries.length > 0 || last === null || last.to !== m.from || last.term !== c.term) return true;
  if (last.matchIndex !== matchIndex) return true;
  const t = c.timing;
  if (heartbeatGapAt !== null && now - heartbeatGapAt < 2 * t.ackIntervalMs) return true;
  return now - last.at >= t.ackIntervalMs - t.heartbeatMs / 2;
}

/** appendRespUpdate: the leader handles a reply to its Append (the `handleAppendResp` action). */
function appendRespUpdate(c: ElectionContext, m: Msg<'appendResp'>, now: number): Partial<ElectionContext> {
  const p = c.progress[m.from];
  if (!p) return {};
  const last = lastIndex(c.log);
  const lastAck = Math.max(p.lastAck, m.echo);
  // A voter's replica position, as of this term: what the handover to a fresher replica reads.
  const peerReplicas = c.voters.includes(m.from) ? notePeerReplica(c, m) : c.peerReplicas;
  if (m.success) {
    const match = Math.min(last, Math.max(p.match, m.matchIndex));
    const next: ElectionContext = {
      ...c,
      peerReplicas,
      progress: { ...c.progress, [m.from]: { match, next: match + 1, lastAck } },
    };
    return { progress: next.progress, peerReplicas, ...advanceCommit(next) };
  }
  // Refused: resume from the follower's hint (never below what it already acknowledged), and retry now.
  const nextIndex = Math.max(p.match + 1, Math.min(p.next - 1, m.matchIndex + 1));
  const next: ElectionContext = {
    ...c,
    progress: { ...c.progress, [m.from]: { match: p.match, next: Math.max(1, nextIndex), lastAck } },
  };
  return { progress: next.progress, fx: stage(c, { sends: [appendFor(next, m.from, now)] }) };
}

/** A learner unanswered for this many learner heartbeats is silent: it gets rare probes instead. */
const LEARNER_SILENT_BEATS = 4;
/** A silent learner is probed at most every this many learner heartbeats (fleet: 19 s). */
const LEARNER_MAX_PROBE_FACTOR = 32;

/**
 * learnerDue: does learner `l` get this learner heartbeat (the `learnerBeat`-th)? One that answered
 * within LEARNER_SILENT_BEATS learner heartbeats (or since this leadership began) gets every one.
 * One that never answers (a robot that is off, or an address discovery was lied to about) is probed
 * ever more rarely, the interval doubling with its silence up to LEARNER_MAX_PROBE_FACTOR learner
 * heartbeats: the leader spends next to nothing on it, and a learner that comes back is heard again
 * at the next probe.
 */
function learnerDue(c: ElectionContext, l: NodeId, learnerBeat: number, now: number): boolean {
  const silentMs = now - Math.max(c.progress[l]?.lastAck ?? NEVER, c.becameLeaderAt);
  const threshold = LEARNER_SILENT_BEATS * c.timing.learnerHeartbeatMs;
  if (silentMs < threshold) return true;
  let factor = 1;
  while (factor < LEARNER_MAX_PROBE_FACTOR && silentMs >= threshold * factor * 2) factor *= 2;
  return learnerBeat % factor === 0;
}

/** heartbeatUpdate: the leader's heartbeat, once CheckQuorum passed (the `broadcastHeartbeat` action). */
function heartbeatUpdate(c: ElectionContext, now: number): Partial<ElectionContext> {
  const beats = c.beats + 1;
  const every = Math.max(1, Math.round(c.timing.learnerHeartbeatMs / c.timing.heartbeatMs));
  const to =
    beats % every === 0
      ? [...otherVoters(c), ...c.learners.filter((l) => l !== c.id && learnerDue(c, l, beats / every, now))]
      : otherVoters(c);
  // This leader's own stickiness: it has just confirmed its quorum (quorumLost was checked first).
  return {
    beats,
    lastLeaderContactAt: now,
    fx: stage(c, { sends: to.map((n) => appendFor(c, n, now)) }),
  };
}

/**
 * emitStaged turns the staged effects into actions, in the order the shell must run them (the
 * `emitEffects` action), and returns the context update that empties them.
 */
function emitStaged(c: ElectionContext, emit: (action: ExecutableAction) => void): Partial<ElectionContext> {
  const fx = c.fx;
  if (fx.hardState) emit({ type: 'persistHardState', params: { term: c.term, votedFor: c.votedFor } });
  if (fx.logFrom !== null) {
    emit({ type: 'persistLog', params: { fromIndex: fx.logFrom, entries: c.log.slice(fx.logFrom - 1) } });
  }
  for (const s of fx.server)
    if (s.op === 'stop') emit({ type: 'stopServer', params: { epoch: s.epoch, reason: s.reason } });
  if (fx.sends.length > 0) emit({ type: 'send', params: { messages: fx.sends } });
  for (const s of fx.server) if (s.op === 'start') emit({ type: 'startServer', params: { epoch: s.epoch } });
  if (c.commitIndex > c.reported.commit) {
    emit({
      type: 'commit',
      params: {
        fromIndex: c.reported.commit + 1,
        entries: c.log.slice(c.reported.commit, c.commitIndex),
      },
    });
  }
  if (c.leader !== c.reported.leader || c.term !== c.reported.term) {
    emit({ type: 'leaderChanged', params: { leader: c.leader, term: c.term } });
  }
  if (fx.rejected !== null)
    emit({ type: 'proposalRejected', params: { reason: fx.rejected, leader: c.leader } });
  for (const text of fx.traces) emit({ type: 'trace', params: { text } });
  return {
    fx: NO_EFFECTS,
    reported: { leader: c.leader, term: c.term, commit: Math.max(c.commitIndex, c.reported.commit) },
  };
}

// ---------------------------------------------------------------------------------------------
// The machine.

export const electionMachine = setup({
  types: {
    context: {} as ElectionContext,
    events: {} as ElectionEvent,
    input: {} as ElectionInput,
  },
  delays: {
    /** What is left of the follower's randomized election timeout. */
    electionTimeout: ({ context, event }) =>
      Math.max(
        1,
        Math.max(
          context.electionResetAt + context.electionTimeoutMs,
          // Never campaign while this robot itself still heard a leader within the stickiness window.
          (context.lastLeaderContactAt ?? -Infinity) + context.timing.electionTimeoutMinMs,
        ) - (nowOf(event) ?? context.electionResetAt),
      ),
    campaignRetry: ({ context }) => context.retryMs,
    heartbeat: ({ context, event }) => heartbeatDelayMs(context, nowOf(event) ?? context.becameLeaderAt),
    /** Re-ask voters that have not answered: half a heartbeat, many RTTs on a LAN. */
    campaignResend: ({ context }) => Math.max(1, Math.round(context.timing.heartbeatMs / 2)),
    transferTimeout: ({ context }) => context.timing.transferTimeoutMs,
    fence: ({ context }) => fenceDelayMs(context.timing),
  },
  guards: {
    canLead: ({ context }) => canLead(context),
    /** A (non-transfer) vote for a higher term while this node still hears a live leader: ignored (thesis §4.2.3). */
    ignoredInLease: ({ context, event }) => {
      const m = msgOf(event);
      return m?.type === 'vote' && !m.transfer && m.term > context.term && leaseActive(context, event.now);
    },
    /** A higher term that this node must adopt. PreVotes and granted PreVote replies carry a future term and are not adopted. */
    higherTerm: ({ context, event }) => {
      const m = msgOf(event);
      if (!m || m.term <= context.term) return false;
      return !(m.type === 'preVote' || (m.type === 'preVoteResp' && m.granted));
    },
    lowerTerm: ({ context, event }) => {
      const m = msgOf(event);
      // A granted PreVote reply carries term + 1 and a PreVote carries the sender's term + 1: neither is stale here.
      return m !== null && m.term < context.term && m.type !== 'preVoteResp';
    },
    isPreVote: ({ event }) => msgOf(event)?.type === 'preVote',
    isVote: ({ event }) => msgOf(event)?.type === 'vote',
    isAppend: ({ event }) => msgOf(event)?.type === 'append',
    isAppendResp: ({ event }) => msgOf(event)?.type === 'appendResp',
    isPreVoteResp: ({ event }) => msgOf(event)?.type === 'preVoteResp',
    isVoteResp: ({ event }) => msgOf(event)?.type === 'voteResp',
    isTimeoutNowForVoter: ({ context, event }) => {
      const m = msgOf(event);
      return m?.type === 'timeoutNow' && m.term === context.term && canLead(context);
    },
    electionDue: ({ context, event }) => event.now - context.electionResetAt >= context.electionTimeoutMs,
    voterElectionDue: ({ context, event }) =>
      canLead(context) &&
      event.now - context.electionResetAt >= context.electionTimeoutMs &&
      // Its own vote counts in the new leader's majority: it must not have heard the old one recently.
      !leaseActive(context, event.now),
    leaderHeard: ({ context, event }) => leaseActive(context, event.now),
    preVoteWon: ({ context }) => voteTally(context).granted >= quorum(context),
    campaignLost: ({ context }) => voteTally(context).refused > context.voters.length - quorum(context),
    voteWon: ({ context }) => voteTally(context).granted >= quorum(context),
    /** CheckQuorum: fewer than a majority of voters echoed an Append sent within the leader's lease. */
    quorumLost: ({ context, event }) => !hasLease(context, event.now),
    /** Leadership is established (its no-op committed) and old leases have surely run out (fencing). */
    canServe: ({ context, event }) =>
      context.commitIndex >= context.noopIndex &&
      (nowOf(event) ?? -Infinity) >= context.becameLeaderAt + fenceDelayMs(context.timing) &&
      // Acknowledgements queued while this robot was frozen do not count: the lease must hold now.
      hasLease(context, nowOf(event) ?? -Infinity),
    /** canServe, and a live voter campaigned in this election with a fresher replica than ours. */
    fresherReplicaElsewhere: ({ context, event }) =>
      fresherReplicaHolder(context, nowOf(event) ?? -Infinity) !== null,
    transfereeCaughtUp: ({ context }) =>
      context.transferee !== null &&
      (context.progress[context.transferee]?.match ?? 0) >= lastIndex(context.log),
  },
  actions: {
    // ---- effects for the shell (params are what it needs; implementations are the shell's) ----
    persistHardState: (_, _p: { term: number; votedFor: NodeId | null }) => {},
    persistLog: (_, _p: { fromIndex: number; entries: readonly LogEntry[] }) => {},
    stopServer: (_, _p: { epoch: number; reason: string }) => {},
    send: (_, _p: { messages: readonly Message[] }) => {},
    startServer: (_, _p: { epoch: number }) => {},
    commit: (_, _p: { fromIndex: number; entries: readonly LogEntry[] }) => {},
    leaderChanged: (_, _p: { leader: NodeId | null; term: number }) => {},
    proposalRejected: (_, _p: { reason: string; leader: NodeId | null }) => {},
    trace: (_, _p: { text: string }) => {},

    /** emitEffects turns the staged effects into actions, in the order the shell must run them. */
    emitEffects: enqueueActions(({ context: c, enqueue }) => {
      // The effect actions are declared in this same setup(), which TypeScript cannot see from here.
      enqueue.assign(emitStaged(c, enqueue as unknown as (action: ExecutableAction) => void));
    }),

    // ---- timers ----
    armElectionTimer: raise(
      { type: 'electionTimeout', now: 0 },
      { id: 'election', delay: 'electionTimeout' },
    ),
    armCampaignTimer: raise({ type: 'electionTimeout', now: 0 }, { id: 'election', delay: 'campaignRetry' }),
    disarmElectionTimer: cancel('election'),
    armHeartbeatTimer: raise({ type: 'heartbeatTimeout', now: 0 }, { id: 'heartbeat', delay: 'heartbeat' }),
    armResendTimer: raise({ type: 'heartbeatTimeout', now: 0 }, { id: 'heartbeat', delay: 'campaignResend' }),
    disarmHeartbeatTimer: cancel('heartbeat'),
    armTransferTimer: raise(
      { type: 'transferTimeout', now: 0 },
      { id: 'transfer', delay: 'transferTimeout' },
    ),
    /** Wake up when the fence delay has passed, so a new leader serves at that moment, not at the next event. */
    armFenceTimer: raise({ type: 'fenceElapsed', now: 0 }, { id: 'fence', delay: 'fence' }),
    disarmFenceTimer: cancel('fence'),
    disarmTransferTimer: cancel('transfer'),
    /** Handle the same event again in the state just entered (after adopting a term or stepping down). */
    reprocess: raise(({ event }) => event),

    // ---- role changes ----
    enterFollower: assign(({ context: c, event }) => {
      const drawn = drawElectionTimeout(c, !c.started);
      return {
        ...drawn,
        started: true,
        bootTimeout: !c.started,
        electionResetAt: nowOf(event) ?? c.electionResetAt,
        votes: {},
        campaignTransfer: false,
      };
    }),
    adoptHigherTerm: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg;
      return {
        term: m.term,
        votedFor: null,
        leader: null,
        lastLeaderContactAt: null,
        fx: stage(c, {
          hardState: true,
          traces: [`${c.id} saw term ${m.term} from ${m.from} (${m.type}) at term ${c.term}: follows`],
        }),
      };
    }),
    startPreCampaign: assign(({ context: c, event }) => {
      const drawn = drawRetry(c);
      const sends: Message[] = otherVoters(c).map((to) => ({
        type: 'preVote',
        from: c.id,
        to,
        term: c.term + 1,
        lastIndex: lastIndex(c.log),
        lastTerm: lastTerm(c.log),
        ...replicaFields(c),
      }));
      return {
        ...drawn,
        // Its own PreVote follows the same rule as anyone's: not while it heard a leader recently.
        votes: { [c.id]: !leaseActive(c, event.now) },
        campaignTransfer: false,
        electionResetAt: event.now,
        fx: stage(c, { sends, traces: [`${c.id} became preCandidate at term ${c.term}`] }),
      };
    }),
    markTransferCampaign: assign({ campaignTransfer: true }),
    /** resendCampaign re-sends the (pre)vote request to voters that have not answered: loss must not cost a whole retry. */
    resendCampaign: assign(({ context: c }, params: { pre: boolean }) => {
      const silent = otherVoters(c).filter((v) => c.votes[v] === undefined);
      const sends: Message[] = silent.map((to) =>
        params.pre
          ? {
              type: 'preVote',
              from: c.id,
              to,
              term: c.term + 1,
              lastIndex: lastIndex(c.log),
              lastTerm: lastTerm(c.log),
              ...replicaFields(c),
            }
          : {
              type: 'vote',
              from: c.id,
              to,
              term: c.term,
              lastIndex: lastIndex(c.log),
              lastTerm: lastTerm(c.log),
              transfer: c.campaignTransfer,
              ...replicaFields(c),
            },
      );
      return { fx: stage(c, { sends }) };
    }),
    startCampaign: assign(({ context: c, event }) => {
      const drawn = drawRetry(c);
      const term = c.term + 1;
      const sends: Message[] = otherVoters(c).map((to) => ({
        type: 'vote',
        from: c.id,
        to,
        term,
        lastIndex: lastIndex(c.log),
        lastTerm: lastTerm(c.log),
        transfer: c.campaignTransfer,
        ...replicaFields(c),
      }));
      return {
        ...drawn,
        term,
        votedFor: c.id,
        leader: null,
        lastLeaderContactAt: null,
        votes: { [c.id]: true },
        electionResetAt: event.now,
        fx: stage(c, {
          hardState: true,
          sends,
          traces: [`${c.id} became candidate at term ${term}${c.campaignTransfer ? ' (transfer)' : ''}`],
        }),
      };
    }),
    becomeLeader: assign(({ context: c, event }) => {
      const now = event.now;
      const log = [...c.log, { term: c.term, kind: 'noop' as const, data: '' }];
      const noopIndex = log.length;
      const progress: Record<NodeId, Progress> = {};
      // The lease starts from the votes actually granted now; a voter that did not vote has not acknowledged.
      for (const n of members(c))
        progress[n] = { match: 0, next: noopIndex, lastAck: c.votes[n] === true ? now : NEVER };
      const next: ElectionContext = {
        ...c,
        log,
        noopIndex,
        progress,
        leader: c.id,
        lastLeaderContactAt: now,
        becameLeaderAt: now,
        beats: 0,
        transferee: null,
        votes: {},
      };
      const sends = members(next).map((to) => appendFor(next, to, now));
      return {
        ...next,
        ...advanceCommit(next),
        fx: stage(c, { logFrom: noopIndex, sends, traces: [`${c.id} became leader at term ${c.term}`] }),
      };
    }),
    startServerIfIdle: assign(({ context: c }) =>
      c.serverEpoch === c.term
        ? {}
        : {
            serverEpoch: c.term,
            fx: stage(c, { server: [{ op: 'start', epoch: c.term, reason: 'leading' }] }),
          },
    ),
    stopServerIfRunning: assign(({ context: c }, params: { reason: string }) =>
      c.serverEpoch === null
        ? {}
        : {
            serverEpoch: null,
            fx: stage(c, { server: [{ op: 'stop', epoch: c.serverEpoch, reason: params.reason }] }),
          },
    ),
    /** stepDown: CheckQuorum failed. This robot no longer leads, so it names no leader and holds no lease. */
    stepDown: assign(({ context: c }) => ({
      leader: null,
      lastLeaderContactAt: null,
      fx: stage(c, { traces: [`${c.id} stepped down at term ${c.term}: CheckQuorum failed`] }),
    })),

    // ---- messages ----
    answerStale: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg;
      // Tell a deposed leader or a stale pre-candidate our term so it catches up; other stale messages are dropped.
      if (m.type === 'append') {
        return {
          fx: stage(c, {
            sends: [
              {
                type: 'appendResp',
                from: c.id,
                to: m.from,
                term: c.term,
                success: false,
                matchIndex: 0,
                echo: m.sentAt,
              },
            ],
          }),
        };
      }
      if (m.type === 'preVote') {
        return {
          fx: stage(c, {
            sends: [{ type: 'preVoteResp', from: c.id, to: m.from, term: c.term, granted: false }],
          }),
        };
      }
      return {};
    }),
    traceIgnoredInLease: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg;
      return {
        fx: stage(c, {
          traces: [`${c.id} ignored vote from ${m.from} at term ${m.term}: leader ${leaseHolder(c)} is live`],
        }),
      };
    }),
    answerPreVote: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg as Msg<'preVote'>;
      let why = '';
      if (!isVoter(c)) why = 'not a voter';
      else if (m.term <= c.term) why = `term ${m.term} not above ${c.term}`;
      else if (leaseActive(c, event.now)) why = `leader ${leaseHolder(c)} is live`;
      else if (!isUpToDate(c.log, m.lastIndex, m.lastTerm)) why = 'log behind';
      else if (replicaBehind(c, m)) why = 'replica behind';
      const granted = why === '';
      return {
        peerReplicas: notePeerReplica(c, m),
        fx: stage(c, {
          sends: [{ type: 'preVoteResp', from: c.id, to: m.from, term: granted ? m.term : c.term, granted }],
          traces: [
            `${c.id} ${granted ? 'granted' : 'refused'} preVote for ${m.from} at term ${m.term}${why ? `: ${why}` : ''}`,
          ],
        }),
      };
    }),
    answerVote: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg as Msg<'vote'>;
      let why = '';
      if (!isVoter(c)) why = 'not a voter';
      else if (m.term !== c.term) why = `term ${m.term} is not ${c.term}`;
      else if (c.votedFor !== null && c.votedFor !== m.from) why = `already voted for ${c.votedFor}`;
      else if (!isUpToDate(c.log, m.lastIndex, m.lastTerm)) why = 'log behind';
      else if (replicaBehind(c, m)) why = 'replica behind';
      const granted = why === '';
      const reply: Message = { type: 'voteResp', from: c.id, to: m.from, term: c.term, granted };
      const trace = `${c.id} ${granted ? 'granted' : 'refused'} vote for ${m.from} at term ${m.term}${why ? `: ${why}` : ''}`;
      const peerReplicas = notePeerReplica(c, m);
      if (!granted) return { peerReplicas, fx: stage(c, { sends: [reply], traces: [trace] }) };
      // The vote is persisted before the reply leaves (emitEffects orders persistHardState first).
      return {
        peerReplicas,
        votedFor: m.from,
        electionResetAt: event.now,
        fx: stage(c, { hardState: c.votedFor !== m.from, sends: [reply], traces: [trace] }),
      };
    }),
    acceptAppend: assign(({ context: c, event }) =>
      acceptAppendUpdate(c, (event as Ev<'message'>).msg as Msg<'append'>, event.now),
    ),
    recordVote: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg as Msg<'preVoteResp' | 'voteResp'>;
      if (!isVoter(c, m.from)) return {};
      return { votes: { ...c.votes, [m.from]: m.granted } };
    }),
    handleAppendResp: assign(({ context: c, event }) =>
      appendRespUpdate(c, (event as Ev<'message'>).msg as Msg<'appendResp'>, event.now),
    ),
    broadcastHeartbeat: assign(({ context: c, event }) => heartbeatUpdate(c, event.now)),
    sendTimeoutNow: assign(({ context: c }) =>
      c.transferee === null
        ? {}
        : {
            fx: stage(c, {
              sends: [{ type: 'timeoutNow', from: c.id, to: c.transferee, term: c.term }],
              traces: [`${c.id} hands leadership to ${c.transferee} at term ${c.term}`],
            }),
          },
    ),
    chooseTransferee: assign(({ context: c, event }) => {
      const e = event as Ev<'transferLeadership'>;
      const candidates = otherVoters(c).filter((v) => canLead(c, v));
      let target: NodeId | null;
      // Not asked to: a new leader hands over to the voter holding the freshest replica.
      if (event.type !== 'transferLeadership') target = fresherReplicaHolder(c, e.now);
      else if (e.to !== undefined) target = candidates.includes(e.to) ? e.to : null;
      else {
        // The most up-to-date voter that acknowledged recently; ties broken by id for determinism.
        const live = candidates.filter(
          (v) => e.now - (c.progress[v]?.lastAck ?? -Infinity) < c.timing.electionTimeoutMinMs,
        );
        live.sort((a, b) => (c.progress[b]?.match ?? 0) - (c.progress[a]?.match ?? 0) || a.localeCompare(b));
        target = live[0] ?? null;
      }
      const traces = [
        target === null
          ? `${c.id} cannot transfer leadership at term ${c.term}: no ${e.to ? `voter named ${e.to}` : 'live voter'}`
          : `${c.id} transfers leadership to ${target} at term ${c.term}`,
      ];
      const next = { ...c, transferee: target };
      const sends = target === null ? [] : [appendFor(next, target, e.now)];
      return { transferee: target, fx: stage(c, { sends, traces }) };
    }),
    clearTransferee: assign({ transferee: null }),
    abandonLeadership: assign(({ context: c }) => ({
      leader: null,
      lastLeaderContactAt: null,
      fx: stage(c, {
        traces: [`${c.id} stepped down at term ${c.term}: the leadership transfer did not complete in time`],
      }),
    })),
    appendProposal: assign(({ context: c, event }) => {
      const e = event as Ev<'propose'>;
      const entry: LogEntry = { term: c.term, kind: e.kind, data: e.data };
      if (entryBytes(entry) > c.timing.maxEntryBytes) {
        return {
          fx: stage(c, {
            rejected: `entry of ${entryBytes(entry)} bytes exceeds maxEntryBytes ${c.timing.maxEntryBytes}`,
          }),
        };
      }
      const log = [...c.log, entry];
      const next: ElectionContext = { ...c, log };
      const sends = otherVoters(c).map((to) => appendFor(next, to, e.now));
      return { log, ...advanceCommit(next), fx: stage(c, { logFrom: log.length, sends }) };
    }),
    rejectProposal: assign(({ context: c }, params: { reason: string }) => ({
      fx: stage(c, { rejected: params.reason }),
    })),
    setLearners: assign(({ context: c, event }) => {
      const e = event as Ev<'setLearners'>;
      const learners = [...new Set(e.learners)].filter((l) => !c.voters.includes(l)).sort();
      if (c.leader !== c.id) return { learners };
      // Progress of robots that are no longer learners goes: a stream of made-up learners must not
      // grow the leader's state.
      const progress: Record<NodeId, Progress> = {};
      for (const [id, p] of Object.entries(c.progress))
        if (c.voters.includes(id) || learners.includes(id)) progress[id] = p;
      // A new learner has answered nothing: it is probed on the silent schedule until it does, so a
      // stream of made-up learners costs the leader what one silent learner costs.
      for (const l of learners) progress[l] ??= { match: 0, next: lastIndex(c.log) + 1, lastAck: NEVER };
      return { learners, progress };
    }),
    setFitness: assign(({ event }) => ({
      fitness: Math.min(1, Math.max(0, (event as Ev<'setFitness'>).fitness)),
    })),
    setReplica: assign(({ event }) => {
      const e = event as Ev<'setReplica'>;
      const ok = (n: number) => (Number.isSafeInteger(n) && n >= 0 ? n : 0);
      return { replica: { epoch: ok(e.epoch), revision: ok(e.revision) } };
    }),
    traceUnexpectedAppend: assign(({ context: c, event }) => {
      const m = (event as Ev<'message'>).msg;
      return { fx: stage(c, { traces: [`${c.id} INVARIANT: a second leader ${m.from} at term ${c.term}`] }) };
    }),
  },
}).createMachine({
  id: 'election',
  context: ({ input }) => {
    const durable = input.durable ?? { term: 0, votedFor: null, log: [] };
    const ctx: ElectionContext = {
      id: input.id,
      voters: [...new Set(input.voters)].sort(),
      learners: [...new Set(input.learners ?? [])].filter((l) => !input.voters.includes(l)).sort(),
      witnesses: [...new Set(input.witnesses ?? [])].filter((w) => input.voters.includes(w)).sort(),
      timing: input.timing,
      fitness: Math.min(1, Math.max(0, input.fitness ?? 0.5)),
      replica: NO_REPLICA_POSITION,
      peerReplicas: {},
      term: durable.term,
      votedFor: durable.votedFor,
      log: durable.log,
      commitIndex: 0,
      leader: null,
      // Boot stickiness: a robot that has voted or followed before (term > 0) may have acknowledged a
      // leader just before it lost power, and that leader's lease still counts the acknowledgement.
      // It grants no vote for one stickiness window after boot. A brand-new robot has acknowledged nothing.
      lastLeaderContactAt: durable.term > 0 ? input.now : null,
      electionResetAt: input.now,
      electionTimeoutMs: input.timing.electionTimeoutMaxMs,
      retryMs: input.timing.campaignRetryMaxMs,
      rng: input.seed | 0,
      votes: {},
      campaignTransfer: false,
      progress: {},
      beats: 0,
      becameLeaderAt: 0,
      noopIndex: 0,
      serverEpoch: null,
      transferee: null,
      lastReply: null,
      heartbeatGapAt: null,
      started: false,
      bootTimeout: false,
      reported: { leader: null, term: durable.term, commit: 0 },
      fx: NO_EFFECTS,
    };
    return ctx;
  },
  initial: 'follower',
  // Handled the same way in every role; the leader's states override propose and transferLeadership.
  on: {
    setLearners: { actions: 'setLearners' },
    setFitness: { actions: 'setFitness' },
    setReplica: { actions: 'setReplica' },
    propose: {
      actions: [
        {
          type: 'rejectProposal',
          params: ({ context }) => ({ reason: context.leader === null ? 'no leader' : 'not the leader' }),
        },
        'emitEffects',
      ],
    },
    transferLeadership: {
      actions: [{ type: 'rejectProposal', params: { reason: 'not the leader' } }, 'emitEffects'],
    },
  },
  states: {
    follower: {
      entry: ['enterFollower', 'armElectionTimer'],
      on: {
        message: [
          ...termRules(),
          { guard: 'isPreVote', actions: ['answerPreVote', 'emitEffects'] },
          { guard: 'isVote', actions: ['answerVote', 'emitEffects'] },
          { guard: 'isAppend', actions: ['acceptAppend', 'emitEffects'] },
          { guard: 'isTimeoutNowForVoter', target: 'candidate', actions: ['markTransferCampaign'] },
        ],
        electionTimeout: [
          { guard: 'voterElectionDue', target: 'preCandidate' },
          // A learner or a witness never campaigns: it starts a new period and keeps following.
          { guard: 'electionDue', actions: ['enterFollower', 'armElectionTimer'] },
          // Fired early because a leader was heard meanwhile: re-arm for the rest of the period.
          { actions: ['armElectionTimer'] },
        ],
        campaign: { guard: 'canLead', target: 'preCandidate' },
      },
    },
    preCandidate: {
      entry: ['startPreCampaign', 'emitEffects', 'armCampaignTimer', 'armResendTimer'],
      exit: ['disarmHeartbeatTimer'],
      always: [
        { guard: 'preVoteWon', target: 'candidate' },
        { guard: 'campaignLost', target: 'follower' },
      ],
      on: {
        message: campaignRules('isPreVoteResp'),
        electionTimeout: [
          { guard: 'leaderHeard', target: 'follower' },
          { target: 'preCandidate', reenter: true },
        ],
        heartbeatTimeout: {
          actions: [{ type: 'resendCampaign', params: { pre: true } }, 'emitEffects', 'armResendTimer'],
        },
      },
    },
    candidate: {
      entry: ['startCampaign', 'emitEffects', 'armCampaignTimer', 'armResendTimer'],
      exit: ['disarmHeartbeatTimer'],
      // A lost or split vote waits for the short retry timer (then PreVote again), not a full election
      // timeout; a winner's Append makes it a follower sooner.
      always: { guard: 'voteWon', target: 'leader' },
      on: {
        message: campaignRules('isVoteResp'),
        // A split vote: try again, through PreVote so a node cut off from the others cannot inflate terms.
        electionTimeout: { target: 'preCandidate' },
        heartbeatTimeout: {
          actions: [{ type: 'resendCampaign', params: { pre: false } }, 'emitEffects', 'armResendTimer'],
        },
      },
    },
    leader: {
      entry: ['becomeLeader', 'emitEffects', 'disarmElectionTimer', 'armHeartbeatTimer', 'armFenceTimer'],
      exit: [
        { type: 'stopServerIfRunning', params: { reason: 'no longer leader' } },
        'clearTransferee',
        'emitEffects',
        'disarmHeartbeatTimer',
        'disarmTransferTimer',
        'disarmFenceTimer',
      ],
      initial: 'establishing',
      on: {
        message: [
          ...termRules(),
          { guard: 'isPreVote', actions: ['answerPreVote', 'emitEffects'] },
          { guard: 'isVote', actions: ['answerVote', 'emitEffects'] },
          { guard: 'isAppendResp', actions: ['handleAppendResp', 'emitEffects'] },
          { guard: 'isAppend', actions: ['traceUnexpectedAppend', 'emitEffects'] },
        ],
        heartbeatTimeout: [
          { guard: 'quorumLost', target: 'follower', actions: ['stepDown', 'emitEffects'] },
          { actions: ['broadcastHeartbeat', 'emitEffects', 'armHeartbeatTimer'] },
        ],
      },
      states: {
        /** Won the vote; waits until its no-op is committed and older leases have surely expired. */
        establishing: {
          always: [
            { guard: and(['canServe', 'fresherReplicaElsewhere']), target: 'transferring' },
            { guard: 'canServe', target: 'serving' },
          ],
          on: {
            fenceElapsed: [
              { guard: and(['canServe', 'fresherReplicaElsewhere']), target: 'transferring' },
              { guard: 'canServe', target: 'serving' },
            ],
            propose: { actions: ['appendProposal', 'emitEffects'] },
            transferLeadership: {
              actions: [
                { type: 'rejectProposal', params: { reason: 'leadership not yet established' } },
                'emitEffects',
              ],
            },
          },
        },
        serving: {
          entry: ['startServerIfIdle', 'emitEffects'],
          on: {
            propose: { actions: ['appendProposal', 'emitEffects'] },
            transferLeadership: { target: 'transferring' },
          },
        },
        /** Bringing the transferee's log up to date; the server keeps serving meanwhile. */
        transferring: {
          // The heartbeat timer is re-armed: a transfer re-sends on it at the faster pace.
          entry: ['chooseTransferee', 'emitEffects', 'armTransferTimer', 'armHeartbeatTimer'],
          always: [
            { guard: ({ context }) => context.transferee === null, target: 'serving' },
            { guard: 'transfereeCaughtUp', target: 'handingOff' },
          ],
          on: {
            propose: {
              actions: [
                { type: 'rejectProposal', params: { reason: 'leadership transfer in progress' } },
                'emitEffects',
              ],
            },
            transferTimeout: { target: 'serving', actions: ['clearTransferee'] },
          },
        },
        /** The server is stopped before TimeoutNow leaves, so the next epoch cannot overlap this one. */
        handingOff: {
          entry: [
            { type: 'stopServerIfRunning', params: { reason: 'leadership transfer' } },
            'sendTimeoutNow',
            'emitEffects',
          ],
          on: {
            heartbeatTimeout: [
              {
                guard: 'quorumLost',
                target: '#election.follower',
                actions: ['stepDown', 'emitEffects'],
              },
              { actions: ['broadcastHeartbeat', 'sendTimeoutNow', 'emitEffects', 'armHeartbeatTimer'] },
            ],
            propose: {
              actions: [
                { type: 'rejectProposal', params: { reason: 'leadership transfer in progress' } },
                'emitEffects',
              ],
            },
            // TimeoutNow has left: the transferee may already lead and serve, and its votes skipped
            // stickiness, so this leader's lease proves nothing. It must not serve again: it steps down
            // and lets an election decide.
            transferTimeout: { target: '#election.follower', actions: ['abandonLeadership', 'emitEffects'] },
          },
        },
      },
    },
  },
});

/**
 * termRules come first in every state's `message` handlers (docs/protocol.md §2): ignore votes while
 * a leader is live, adopt a higher term and handle the message again as a follower, answer stale ones.
 */
function termRules() {
  return [
    { guard: 'ignoredInLease' as const, actions: ['traceIgnoredInLease' as const, 'emitEffects' as const] },
    {
      guard: 'higherTerm' as const,
      target: '#election.follower',
      reenter: true,
      actions: ['adoptHigherTerm' as const, 'emitEffects' as const, 'reprocess' as const],
    },
    { guard: 'lowerTerm' as const, actions: ['answerStale' as const, 'emitEffects' as const] },
  ];
}

// ---------------------------------------------------------------------------------------------
// The Ready-style interface shells use: feed an event, get the next snapshot and the effects to run.

export type ElectionSnapshot = ReturnType<typeof initialTransition<typeof electionMachine>>[0];
export type Role = 'follower' | 'preCandidate' | 'candidate' | 'leader';

/** ElectionEffect is one thing the shell must do, in the order given. */
export type ElectionEffect =
  | { readonly kind: 'persistHardState'; readonly term: number; readonly votedFor: NodeId | null }
  | { readonly kind: 'persistLog'; readonly fromIndex: number; readonly entries: readonly LogEntry[] }
  | { readonly kind: 'stopServer'; readonly epoch: number; readonly reason: string }
  | { readonly kind: 'send'; readonly messages: readonly Message[] }
  | { readonly kind: 'startServer'; readonly epoch: number }
  | { readonly kind: 'commit'; readonly fromIndex: number; readonly entries: readonly LogEntry[] }
  | { readonly kind: 'leaderChanged'; readonly leader: NodeId | null; readonly term: number }
  | { readonly kind: 'proposalRejected'; readonly reason: string; readonly leader: NodeId | null }
  | { readonly kind: 'trace'; readonly text: string }
  /** Arm timer `id` to deliver `event` (with `now` set) after `delayMs`, replacing any pending one. */
  | {
      readonly kind: 'armTimer';
      readonly id: TimerId;
      readonly delayMs: number;
      readonly event: ElectionEvent;
    }
  | { readonly kind: 'disarmTimer'; readonly id: TimerId };

export interface ElectionStep {
  readonly snapshot: ElectionSnapshot;
  readonly effects: readonly ElectionEffect[];
}

type ExecutableAction = { type: string; params?: unknown };

function toEffects(actions: readonly ExecutableAction[]): ElectionEffect[] {
  const out: ElectionEffect[] = [];
  for (const a of actions) {
    const p = (a.params ?? {}) as Record<string, unknown>;
    switch (a.type) {
      case 'xstate.raise':
        // Raises without a delay were handled inside the transition; delayed ones are timers.
        if (typeof p.delay === 'number') {
          out.push({
            kind: 'armTimer',
            id: p.id as TimerId,
            delayMs: p.delay,
            event: p.event as ElectionEvent,
          });
        }
        break;
      case 'xstate.cancel':
        out.push({ kind: 'disarmTimer', id: p.sendId as TimerId });
        break;
      case 'persistHardState':
      case 'persistLog':
      case 'stopServer':
      case 'send':
      case 'startServer':
      case 'commit':
      case 'leaderChanged':
      case 'proposalRejected':
      case 'trace':
        out.push({ kind: a.type, ...p } as ElectionEffect);
        break;
      default:
        // assign and enqueueActions bookkeeping: nothing for the shell.
        break;
    }
  }
  return out;
}

function checked(snapshot: ElectionSnapshot, actions: readonly ExecutableAction[]): ElectionStep {
  const fx = snapshot.context.fx;
  if (
    fx !== NO_EFFECTS &&
    (fx.hardState ||
      fx.logFrom !== null ||
      fx.sends.length ||
      fx.server.length ||
      fx.traces.length ||
      fx.rejected)
  ) {
    // A transition staged effects without emitting them: a bug in this file, never an input problem.
    throw new Error(`election: staged effects were not emitted (state ${JSON.stringify(snapshot.value)})`);
  }
  return { snapshot, effects: toEffects(actions) };
}

/** startElection builds a node's initial snapshot from its config and durable state. */
export function startElection(input: ElectionInput): ElectionStep {
  const [snapshot, actions] = initialTransition(electionMachine, input);
  return checked(snapshot, actions as ExecutableAction[]);
}

const transitionElection = pureStepper(electionMachine, {
  id: 'x',
  voters: ['x'],
  timing: { electionTimeoutMinMs: 1, electionTimeoutMaxMs: 2, campaignRetryMinMs: 1, campaignRetryMaxMs: 2 },
  seed: 0,
  now: 0,
});

/** stepElection feeds one event; the caller runs the effects in order before feeding the next. */
export function stepElection(snapshot: ElectionSnapshot, event: ElectionEvent): ElectionStep {
  return steadyStep(snapshot, event) ?? machineStep(snapshot, event);
}

/** machineStep is stepElection through xstate's interpreter alone: the reference steadyStep is tested against. */
export function machineStep(snapshot: ElectionSnapshot, event: ElectionEvent): ElectionStep {
  const [next, actions] = transitionElection(snapshot, event);
  return checked(next, actions as ExecutableAction[]);
}

/**
 * steadyStep handles the three events a settled site is made of, or returns null for machineStep:
 * - a follower's (or learner's) Append of its own term;
 * - a serving leader's reply to its Append, of its own term;
 * - a serving leader's heartbeat while it holds its lease.
 * They are nearly all an idle site's events, every heartbeat from every peer, and xstate's generic
 * interpreter cost most of the agent's idle CPU and garbage (docs/benchmarks/agent.md). For each, the machine takes
 * one targetless transition whose actions are the update function above and emitEffects, and no
 * `always` transition can follow (`follower` and `leader.serving` have none), so the result is that
 * update, merged into the context as xstate's assign does, plus the same effects. The state value
 * does not change, so the snapshot is xstate's own clone with the new context.
 * test/property/steady-step.property.test.ts checks it against machineStep on every event of simulated sites with faults.
 */
export function steadyStep(snapshot: ElectionSnapshot, event: ElectionEvent): ElectionStep | null {
  const c = snapshot.context;
  const value = snapshot.value as unknown;
  if (event.type === 'message') {
    const m = event.msg;
    if (m.term !== c.term) return null;
    if (m.type === 'append' && value === 'follower')
      return settle(snapshot, acceptAppendUpdate(c, m, event.now));
    if (m.type === 'appendResp' && isServing(value))
      return settle(snapshot, appendRespUpdate(c, m, event.now));
    return null;
  }
  if (event.type === 'heartbeatTimeout' && isServing(value) && hasLease(c, event.now)) {
    const step = settle(snapshot, heartbeatUpdate(c, event.now));
    const rearm: ElectionEffect = {
      kind: 'armTimer',
      id: 'heartbeat',
      delayMs: heartbeatDelayMs(step.snapshot.context, event.now),
      event: { type: 'heartbeatTimeout', now: 0 },
    };
    return { snapshot: step.snapshot, effects: [...step.effects, rearm] };
  }
  return null;
}

function isServing(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as { leader?: string }).leader === 'serving';
}

/** settle applies an update and emitEffects the way xstate's assign does: merged into a new context. */
function settle(snapshot: ElectionSnapshot, update: Partial<ElectionContext>): ElectionStep {
  const updated: ElectionContext = { ...snapshot.context, ...update };
  const actions: ExecutableAction[] = [];
  const context: ElectionContext = { ...updated, ...emitStaged(updated, (a) => actions.push(a)) };
  return { snapshot: { ...snapshot, context } as ElectionSnapshot, effects: toEffects(actions) };
}

/** roleOf names the node's role in a snapshot. */
export function roleOf(snapshot: ElectionSnapshot): Role {
  // Only `leader` has sub-states, so every other role's value is its name.
  const v = snapshot.value;
  return typeof v === 'string' ? (v as Role) : 'leader';
}

/** leaderPhaseOf names the leader's sub-state, or null when not leading. */
export function leaderPhaseOf(
  snapshot: ElectionSnapshot,
): 'establishing' | 'serving' | 'transferring' | 'handingOff' | null {
  const v = snapshot.value as unknown;
  if (typeof v === 'object' && v !== null && 'leader' in v) return (v as { leader: 'establishing' }).leader;
  return null;
}

/**
 * leaseExpiresAt: until when this robot may serve `epoch` by its own lease (a majority of voters
 * echoed an Append sent within leaderLeaseMs), or null if it may not serve that epoch at all. The
 * agent's fenced front door checks it on every connection and every chunk, so a robot that was
 * frozen (its lease ran out while it could not act) serves nothing after it thaws, even before its
 * statechart has processed the higher term.
 */
export function leaseExpiresAt(snapshot: ElectionSnapshot, epoch: number): number | null {
  const c = snapshot.context;
  if (roleOf(snapshot) !== 'leader' || c.serverEpoch !== epoch || c.term !== epoch) return null;
  // Self counts as one; the (quorum − 1)-th most recent echo from the others bounds the lease.
  return quorumEchoAt(c) + c.timing.leaderLeaseMs;
}

/**
 * liveLeader: the leader this robot can vouch for now, or null. A leader vouches for itself while a
 * majority echoes it (its lease); anyone else while it heard that leader within the stickiness
 * window. The last leader a robot merely remembers is not vouched for: status must not show it.
 */
export function liveLeader(snapshot: ElectionSnapshot, now: number): NodeId | null {
  const c = snapshot.context;
  if (c.leader === null) return null;
  if (c.leader === c.id) return roleOf(snapshot) === 'leader' && hasLease(c, now) ? c.id : null;
  return leaseActive(c, now) ? c.leader : null;
}

export function durableOf(snapshot: ElectionSnapshot): DurableState {
  const c = snapshot.context;
  return { term: c.term, votedFor: c.votedFor, log: c.log };
}

/**
 * campaignRules are the `message` handlers of a (pre-)candidate: the term rules, answers to other
 * campaigns, a leader's Append (become its follower and handle it again), and the replies it counts.
 */
function campaignRules(counts: 'isPreVoteResp' | 'isVoteResp') {
  return [
    ...termRules(),
    { guard: 'isPreVote' as const, actions: ['answerPreVote' as const, 'emitEffects' as const] },
    { guard: 'isVote' as const, actions: ['answerVote' as const, 'emitEffects' as const] },
    { guard: 'isAppend' as const, target: 'follower', actions: ['reprocess' as const] },
    { guard: counts, actions: ['recordVote' as const] },
  ];
}
