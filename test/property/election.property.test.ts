/**
 * Property tests of the election over random fault schedules in the deterministic simulator, plus a
 * few properties of the pure helpers the election is built on.
 *
 * A schedule is: 1..5 voters (sometimes plus 1..2 learners), the `test` timing profile, per-link loss
 * 0..0.3, a random one-way delay range, duplicates 0..0.1, periodic proposals, and a list of timed
 * faults from the fault vocabulary (lab/faults.ts) before a "heal time" H. At H the run heals the
 * network and restarts / resumes every robot, then stays quiet (no loss) for a bounded time.
 *
 * Loss is expressed as `drop:a->b=p` faults at 0 ms for every ordered pair (the Simulator itself runs
 * with lossRate 0), so `heal` clears it: the quiet period is loss-free, which the liveness bound needs.
 *
 * Checked for every schedule:
 *   1. safety: the run has no violations (two-leaders, overlapping-epochs, lost-commit, divergent-commit,
 *      invariant); they are printed with the replay if not. The REGRESSIONS below are the minimal
 *      reproductions of the bugs this property found (all fixed), replayed on every run;
 *   2. durability, directly: every committed entry is in the durable log of a majority of voters, the
 *      final leader's durable log holds the whole committed prefix, and every robot's durable log agrees
 *      with the committed prefix as far as it goes (and, for voters, holds everything committed by the
 *      time the single leader was agreed);
 *   3. liveness: within `quietBoundMs` after H there is exactly one leader (settled: not handing over),
 *      every voter follows it at its term, and that stays so, sampled every heartbeat, for STABLE_MS.
 *
 * Runs: 5,000 schedules here and 5,000 in election-pause.property.test.ts by default (Node's test
 * runner runs the two files in parallel); EDGECTL_PROPERTY_RUNS sets the number per file (long mode,
 * e.g. EDGECTL_PROPERTY_RUNS=100000). A failure prints fast-check's seed and path, the shrunk schedule
 * as an `edgectl sim` line and the last trace lines; replay it with EDGECTL_PROPERTY_SEED and
 * EDGECTL_PROPERTY_PATH as printed. EDGECTL_PROPERTY_SEED alone pins the whole sequence.
 * The summary line of each file prints the measured throughput.
 *
 * This module also exports the schedule machinery for election-pause.property.test.ts; its own tests
 * register only when it is the test file being run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import fc from 'fast-check';
import { Simulator, defaultSimOptions, type SimOptions, type SimResult } from '../../lab/sim/simulator.ts';
import { formatFault, parseFault, parseTimedFault, type Fault, type TimedFault } from '../../lab/faults.ts';
import { fenceDelayMs, testTiming, type ElectionTiming } from '../../statecharts/timing.ts';
import {
  isUpToDate,
  lastIndex,
  lastTerm,
  mergeEntries,
  quorumMatch,
  termAt,
} from '../../statecharts/site-log.ts';
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';

// ---------------------------------------------------------------------------------------------
// Schedules.

export const TIMING: ElectionTiming = testTiming;

/**
 * The largest one-way delay a schedule may draw, ms: half a heartbeat. That keeps the ratio of network
 * delay to timers of a Wi-Fi site on `fleet` timing (2–10 ms against a 100 ms heartbeat), scaled up
 * fivefold. Much longer delays (comparable to the election timeout's random spread) make split votes
 * repeat for a long time (see quietBoundMs).
 */
export const MAX_DELAY_MS = Math.round(TIMING.heartbeatMs / 2);

/**
 * quietBoundMs: how long after the heal time H a single, agreed leader must exist. With every robot up,
 * no loss and one-way delay ≤ d (d = MAX_DELAY_MS), after H:
 *   - max(electionTimeoutMinMs, leaderLeaseMs): every stickiness window and CheckQuorum lease that
 *     started before H has run out: a leader that leads a quorum keeps leading (fine), one that does
 *     not has stepped down, and a robot with a stale higher term has answered the leader's Append
 *     (answerStale), making it step down;
 *   - ELECTION_ROUNDS × (electionTimeoutMaxMs + 4d): elections. In each, some voter's randomized timer
 *     fires within electionTimeoutMaxMs (restarted robots: bootElectionTimeoutMs + spread, sooner), then a
 *     PreVote and a Vote round trip. A split vote in which every vote is answered makes every candidate
 *     lose (campaignLost) and fall back to a full follower timeout, not to the short campaign retry, so a
 *     round costs a whole timeout; ELECTION_ROUNDS − 1 consecutive split votes are tolerated;
 *   - fenceDelayMs + 2 × (heartbeatMs + d): the winner's no-op commits, and its heartbeats reach every
 *     voter, so all of them name it at its term.
 * With `test` timing and d = 5: 100 + 8 × 170 + 15 + 30 = 1505 ms. Splits repeat with a probability of
 * roughly a quarter with 2 or 4 voters: over 50,000 schedules the worst case seen was 680 ms (4 rounds),
 * so 8 rounds keep a false failure below about one in 10^7 schedules. The summary line prints the
 * measured worst case.
 */
export const ELECTION_ROUNDS = 8;
export function quietBoundMs(t: ElectionTiming, maxDelayMs: number): number {
  return (
    Math.max(t.electionTimeoutMinMs, t.leaderLeaseMs) +
    ELECTION_ROUNDS * (t.electionTimeoutMaxMs + 4 * maxDelayMs) +
    fenceDelayMs(t) +
    2 * (t.heartbeatMs + maxDelayMs)
  );
}

/**
 * An agreement counts once it held this long (sampled every heartbeat): no flapping once healed. Every
 * CheckQuorum window that began before the heal has closed by then (a leader whose last acks predate
 * the heal steps down within leaderLeaseMs, checked at heartbeat granularity).
 */
export const STABLE_MS = TIMING.leaderLeaseMs + TIMING.heartbeatMs;

/**
 * Bugs this property found, each now fixed; their minimal reproductions are replayed as regression
 * tests. The comments say what was wrong and where the fix is.
 */
export const REGRESSIONS = {
  /**
   * Fixed in lab/sim/checker.ts (commit terms). It reported `lost-commit` when a robot becomes leader of a stale term (below a term
   * another robot already led), e.g. a candidate frozen before its votes arrived and resumed after a
   * newer leader committed. Leader Completeness only constrains leaders of later terms, and such a
   * leader can neither commit nor serve: a false positive of the checker.
   */
  'stale-term-lost-commit': {
    voters: 3,
    seed: 1,
    delay: [0, 1],
    faults: ['pause:r3@36ms', 'resume:r3@203ms'],
  },
  /**
   * Fixed: `canServe` now also requires the lease (`hasLease`). It checked only that the no-op is
   * committed and the fence delay passed, not that the leader's quorum lease is still valid. A leader
   * frozen right after winning, resumed after another robot won a later term, first handles its queued
   * AppendResps (arrival order, as after SIGCONT out of epoll_wait), commits its no-op on those stale
   * acks and starts its server while the newer leader's runs; it stops it at its next heartbeat timer.
   */
  'stale-lease-server-start': {
    voters: 4,
    seed: 65608416,
    delay: [1, 1],
    faults: ['pause:r4@36ms', 'resume:r4@221ms'],
  },
  /**
   * Fixed: a transfer timeout after TimeoutNow now steps down (`abandonLeadership`). It restarted the server
   * (startServerIfIdle) for the old epoch, but the TimeoutNow may have been delivered and the transferee
   * may already lead (and serve) the next term: transfer votes bypass stickiness, so the old leader's
   * still-valid quorum lease proves nothing. Here r3 hands over to r1, loses r1, and its lease from r2's
   * ack of a heartbeat sent just after the handover outlives the transfer timeout by 1 ms.
   */
  'transfer-timeout-restart': {
    voters: 3,
    seed: 1,
    delay: [2, 2],
    faults: ['transfer:r1@202ms', 'cut:r3,r1@203ms', 'drop:r2->r3=1@206ms'],
  },
  /**
   * Fixed by boot stickiness (a robot with term > 0 grants no vote for one window after boot). Stickiness
   * lived only in memory (lastLeaderContactAt). A voter that rebooted
   * forgets it heard a leader and grants (Pre)Votes at once, although the old leader's CheckQuorum lease
   * still counts that voter's acks from before the crash (for up to leaderLeaseMs). The new leader waits
   * only fenceDelayMs, so both servers run. Here r3 leads; r1 stops hearing it; r2 reboots cut off from
   * r3 and at once votes r1 in: r1 serves from 236 ms, r3 until its lease lapses at 279 ms.
   */
  'reboot-forgets-stickiness': {
    voters: 3,
    seed: 1,
    delay: [1, 1],
    faults: ['cut:r3,r1@100ms', 'kill:r2@190ms', 'cut:r3,r2@190ms', 'restart:r2@192ms'],
  },
  /**
   * Fixed: hearing a leader ends the boot timeout, and no voter campaigns inside its own stickiness
   * window. The short boot election timeout (bootElectionTimeoutMs + spread) stayed in
   * force for the whole first follower period, also after the robot hears a leader (acceptAppend resets
   * electionResetAt but does not redraw electionTimeoutMs), so a rebooted voter campaigns as soon as
   * bootElectionTimeoutMs after the last heartbeat, while the leader's lease still counts its recent acks.
   * Here r1 reboots at 55 ms and follows r3; r2 loses r3 at 100 ms, r1 at 205 ms; r1 campaigns 31 ms
   * later, wins with r2 and serves from 255 ms while r3 serves until 299 ms.
   */
  'boot-timeout-persists': {
    voters: 3,
    seed: 1,
    delay: [1, 1],
    faults: ['kill:r1@50ms', 'restart:r1@55ms', 'cut:r3,r2@100ms', 'cut:r3,r1@205ms'],
  },
} as const;
export type Regression = keyof typeof REGRESSIONS;

export interface Schedule {
  readonly voters: number;
  readonly learners: number;
  /** Witness voters (w1..) beside the robots: they vote, never lead. */
  readonly witnesses?: number;
  readonly seed: number;
  /** Loss per directed link until H, as drop faults. */
  readonly loss: number;
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  readonly duplicateRate: number;
  readonly proposeEveryMs: number | null;
  /** The random faults, all before H, sorted by time. */
  readonly faults: readonly TimedFault[];
  readonly healAtMs: number;
  /** Datagrams a paused robot's socket buffer holds (the Simulator's default when absent). */
  readonly pausedQueueLimit?: number;
  /** Each robot's datastore replica position, by index (election-replica.property.test.ts). */
  readonly replicas?: readonly { readonly epoch: number; readonly revision: number }[];
}

export const names = (s: Pick<Schedule, 'voters' | 'learners' | 'witnesses'>): NodeId[] => [
  ...Array.from({ length: s.voters + s.learners }, (_, i) => `r${i + 1}`),
  ...Array.from({ length: s.witnesses ?? 0 }, (_, i) => `w${i + 1}`),
];

/** simFaults: the whole fault list the Simulator gets (loss, the random faults, the heal at H). */
export function simFaults(s: Schedule): TimedFault[] {
  const all = names(s);
  const out: TimedFault[] = [];
  if (s.loss > 0) {
    for (const a of all)
      for (const b of all)
        if (a !== b) out.push({ atMs: 0, fault: { kind: 'drop', from: a, to: b, rate: s.loss } });
  }
  out.push(...s.faults);
  out.push({ atMs: s.healAtMs, fault: { kind: 'heal' } });
  // Restart / resume are no-ops on robots that are up / running, so naming all of them is exact.
  for (const n of all) out.push({ atMs: s.healAtMs, fault: { kind: 'restart', node: n } });
  for (const n of all) out.push({ atMs: s.healAtMs, fault: { kind: 'resume', node: n } });
  return out;
}

export function simOptions(s: Schedule): SimOptions {
  return {
    ...defaultSimOptions(TIMING),
    nodes: s.voters + s.learners,
    voters: s.voters,
    witnesses: s.witnesses ?? 0,
    seed: s.seed,
    durationMs: s.healAtMs,
    lossRate: 0,
    delayMinMs: s.delayMinMs,
    delayMaxMs: s.delayMaxMs,
    duplicateRate: s.duplicateRate,
    bursts: [],
    faults: simFaults(s),
    proposeEveryMs: s.proposeEveryMs,
    trace: false,
    ...(s.pausedQueueLimit !== undefined ? { pausedQueueLimit: s.pausedQueueLimit } : {}),
    ...(s.replicas ? { replica: (_id: NodeId, i: number) => s.replicas?.[i] ?? null } : {}),
  };
}

/** describeSchedule renders a schedule as an `edgectl sim` command line (faults in the lab/faults.ts vocabulary). */
export function describeSchedule(s: Schedule): string {
  const end = s.healAtMs + quietBoundMs(TIMING, MAX_DELAY_MS) + STABLE_MS;
  const parts = [
    'edgectl sim --timing test',
    `--voters ${s.voters} --nodes ${s.voters + s.learners}${s.witnesses ? ` --witnesses ${s.witnesses}` : ''} --seed ${s.seed} --duration ${end}ms`,
    `--loss 0 --delay ${s.delayMinMs}ms..${s.delayMaxMs}ms --duplicate ${s.duplicateRate}`,
    `--propose-every ${s.proposeEveryMs === null ? 'never' : `${s.proposeEveryMs}ms`}` +
      (s.pausedQueueLimit !== undefined ? ` --paused-queue-limit ${s.pausedQueueLimit}` : ''),
  ];
  if (s.loss > 0) parts.push(`--fault 'drop:<every a>-><every b>=${s.loss}@0ms'`);
  for (const f of s.faults) parts.push(`--fault '${formatFault(f.fault)}@${f.atMs}ms'`);
  parts.push(
    `--fault 'heal@${s.healAtMs}ms' --fault 'restart:<all>@${s.healAtMs}ms' --fault 'resume:<all>@${s.healAtMs}ms'`,
  );
  return parts.join(' \\\n    ');
}

// ---- raw (shrinkable) schedules and their arbitraries ----

/** A robot: -1 is `leader`, anything else a robot index (mod the robot count). */
type RawTarget = number;
export type RawFault =
  | {
      readonly kind: 'kill' | 'pause';
      readonly at: number;
      readonly target: RawTarget;
      readonly undoAfterMs: number | null;
    }
  | { readonly kind: 'isolate'; readonly at: number; readonly target: RawTarget }
  | { readonly kind: 'cut'; readonly at: number; readonly a: number; readonly b: number }
  | {
      readonly kind: 'partition';
      readonly at: number;
      readonly order: readonly number[];
      readonly cuts: readonly number[];
    }
  | { readonly kind: 'burst'; readonly at: number; readonly durationMs: number }
  | {
      readonly kind: 'drop';
      readonly at: number;
      readonly from: RawTarget;
      readonly to: RawTarget;
      readonly pct: number;
    }
  | { readonly kind: 'transfer'; readonly at: number; readonly to: RawTarget | null }
  | { readonly kind: 'heal' | 'reviveAll'; readonly at: number };

export interface RawSchedule {
  readonly voters: number;
  readonly learners: number;
  readonly witnesses: number;
  readonly seed: number;
  readonly lossPct: number;
  readonly delayMinMs: number;
  readonly delaySpreadMs: number;
  readonly dupPct: number;
  readonly proposeEveryMs: number | null;
  readonly healAtMs: number;
  /** Fault times are per-mille of the heal time, so shrinking H keeps the faults before it. */
  readonly faults: readonly RawFault[];
  readonly pausedQueueLimit: number | null;
}

const at = fc.integer({ min: 0, max: 999 });
const target = fc.integer({ min: -1, max: 6 });
const undo = fc.option(fc.integer({ min: 1, max: 400 }), { nil: null, freq: 3 });

export const rawFaultArb = {
  kill: fc.record({ kind: fc.constant('kill' as const), at, target, undoAfterMs: undo }),
  pause: fc.record({ kind: fc.constant('pause' as const), at, target, undoAfterMs: undo }),
  isolate: fc.record({ kind: fc.constant('isolate' as const), at, target }),
  cut: fc.record({ kind: fc.constant('cut' as const), at, a: fc.nat(6), b: fc.nat(6) }),
  partition: fc.record({
    kind: fc.constant('partition' as const),
    at,
    order: fc.array(fc.nat(1000), { minLength: 7, maxLength: 7 }),
    cuts: fc.array(fc.nat(6), { minLength: 1, maxLength: 2 }),
  }),
  burst: fc.record({ kind: fc.constant('burst' as const), at, durationMs: fc.integer({ min: 1, max: 300 }) }),
  drop: fc.record({
    kind: fc.constant('drop' as const),
    at,
    from: target,
    to: target,
    pct: fc.integer({ min: 0, max: 100 }),
  }),
  transfer: fc.record({ kind: fc.constant('transfer' as const), at, to: fc.option(target, { nil: null }) }),
  heal: fc.record({ kind: fc.constant('heal' as const), at }),
  reviveAll: fc.record({ kind: fc.constant('reviveAll' as const), at }),
};

export interface ScheduleShape {
  /** Weighted fault arbitraries. */
  readonly faults: readonly fc.WeightedArbitrary<RawFault>[];
  readonly maxFaults: number;
  readonly healAtMs: { readonly min: number; readonly max: number };
  /** Paused robots' socket buffer size, or null for the Simulator's default. */
  readonly pausedQueueLimit: fc.Arbitrary<number | null>;
}

/** The general mix: every verb of the vocabulary, network faults weighted up. */
export const GENERAL_SHAPE: ScheduleShape = {
  faults: [
    { weight: 3, arbitrary: rawFaultArb.kill },
    { weight: 2, arbitrary: rawFaultArb.pause },
    { weight: 3, arbitrary: rawFaultArb.isolate },
    { weight: 2, arbitrary: rawFaultArb.cut },
    { weight: 3, arbitrary: rawFaultArb.partition },
    { weight: 2, arbitrary: rawFaultArb.burst },
    { weight: 2, arbitrary: rawFaultArb.drop },
    { weight: 2, arbitrary: rawFaultArb.transfer },
    { weight: 1, arbitrary: rawFaultArb.heal },
    { weight: 1, arbitrary: rawFaultArb.reviveAll },
  ],
  maxFaults: 10,
  healAtMs: { min: 50, max: 1000 },
  pausedQueueLimit: fc.constant(null),
};

export function rawScheduleArb(shape: ScheduleShape): fc.Arbitrary<RawSchedule> {
  return fc.record({
    voters: fc.integer({ min: 1, max: 5 }),
    learners: fc.oneof(
      { weight: 3, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) },
    ),
    witnesses: fc.oneof(
      { weight: 3, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }) },
    ),
    seed: fc.integer({ min: 1, max: 0x7fffffff }),
    lossPct: fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 3, arbitrary: fc.integer({ min: 0, max: 30 }) },
    ),
    delayMinMs: fc.integer({ min: 0, max: 2 }),
    delaySpreadMs: fc.integer({ min: 0, max: MAX_DELAY_MS - 2 }),
    dupPct: fc.oneof(
      { weight: 1, arbitrary: fc.constant(0) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 10 }) },
    ),
    proposeEveryMs: fc.option(fc.integer({ min: 10, max: 100 }), { nil: null, freq: 5 }),
    healAtMs: fc.integer(shape.healAtMs),
    faults: fc.array(fc.oneof(...shape.faults), { maxLength: shape.maxFaults }),
    pausedQueueLimit: shape.pausedQueueLimit,
  });
}

/** buildSchedule turns a raw schedule into concrete, valid timed faults. */
export function buildSchedule(r: RawSchedule): Schedule {
  const all = names(r);
  const n = all.length;
  const H = r.healAtMs;
  const tgt = (t: RawTarget): string => (t < 0 ? 'leader' : all[t % n]!);
  const name = (t: number): string => all[t % n]!;
  const time = (a: number): number => Math.floor((a * H) / 1000);
  const faults: TimedFault[] = [];
  const add = (atMs: number, fault: Fault): void => {
    if (atMs < H) faults.push({ atMs, fault });
  };
  for (const f of r.faults) {
    const t = time(f.at);
    switch (f.kind) {
      case 'kill':
      case 'pause': {
        const node = tgt(f.target);
        add(t, { kind: f.kind, node });
        // Undo a named robot mid-schedule; `leader` (and anything not undone) is undone at H.
        if (f.undoAfterMs !== null && node !== 'leader')
          add(t + f.undoAfterMs, { kind: f.kind === 'kill' ? 'restart' : 'resume', node });
        break;
      }
      case 'isolate':
        add(t, { kind: 'isolate', node: tgt(f.target) });
        break;
      case 'cut':
        if (n >= 2) add(t, { kind: 'cut', a: name(f.a), b: name(f.a % n === f.b % n ? f.b + 1 : f.b) });
        break;
      case 'partition': {
        if (n < 2) break;
        const order = all
          .map((id, i) => ({ id, k: f.order[i] ?? i }))
          .sort((x, y) => x.k - y.k || x.id.localeCompare(y.id));
        const cuts = [...new Set(f.cuts.map((c) => 1 + (c % (n - 1))))].sort((x, y) => x - y);
        const groups: string[][] = [];
        let from = 0;
        for (const c of [...cuts, n]) {
          groups.push(order.slice(from, c).map((o) => o.id));
          from = c;
        }
        add(t, { kind: 'partition', groups });
        break;
      }
      case 'burst':
        // Bursts are not undone by heal: keep them inside the faulty period.
        if (t + 1 < H) add(t, { kind: 'burst', durationMs: Math.min(f.durationMs, H - t - 1) });
        break;
      case 'drop':
        if (n >= 2) add(t, { kind: 'drop', from: tgt(f.from), to: tgt(f.to), rate: f.pct / 100 });
        break;
      case 'transfer':
        add(t, f.to === null ? { kind: 'transfer' } : { kind: 'transfer', to: tgt(f.to) });
        break;
      case 'heal':
        add(t, { kind: 'heal' });
        break;
      case 'reviveAll':
        for (const id of all) add(t, { kind: 'restart', node: id });
        for (const id of all) add(t, { kind: 'resume', node: id });
        break;
    }
  }
  faults.sort((a, b) => a.atMs - b.atMs); // stable: same-time faults keep their order
  const schedule: Schedule = {
    voters: r.voters,
    learners: r.learners,
    ...(r.witnesses > 0 ? { witnesses: r.witnesses } : {}),
    seed: r.seed,
    loss: r.lossPct / 100,
    delayMinMs: r.delayMinMs,
    delayMaxMs: r.delayMinMs + r.delaySpreadMs,
    duplicateRate: r.dupPct / 100,
    proposeEveryMs: r.proposeEveryMs,
    faults,
    healAtMs: H,
    ...(r.pausedQueueLimit !== null ? { pausedQueueLimit: r.pausedQueueLimit } : {}),
  };
  // fast-check prints counterexamples with this.
  return Object.assign(schedule, { [fc.toStringMethod]: () => describeSchedule(schedule) });
}

export const scheduleArb = (shape: ScheduleShape): fc.Arbitrary<Schedule> =>
  rawScheduleArb(shape).map(buildSchedule);

// ---------------------------------------------------------------------------------------------
// Running one schedule and judging it.

export interface Outcome {
  readonly result: SimResult;
  /** Problems found; empty when the schedule passes. */
  readonly problems: readonly string[];
  /** ms after H until the single, agreed leader (null if never within the bound). */
  readonly convergedAfterMs: number | null;
  readonly simulatedMs: number;
}

const entryKey = (e: LogEntry): string => `${e.term}:${e.kind}:${e.data}`;

/** agreement: the one settled leader every voter follows at its term, or a reason why there is none. */
function agreement(sim: Simulator): { leader: NodeId; term: number } | string {
  const leaders = [...sim.nodes.values()].filter((n) => n.alive && n.role === 'leader');
  if (leaders.length !== 1)
    return `${leaders.length} leaders (${leaders.map((l) => `${l.id}@${l.term}`).join(', ') || 'none'})`;
  const l = leaders[0]!;
  if (l.paused) return `leader ${l.id} is paused`;
  // A transfer begun before the heal may still hand leadership over: not settled yet.
  const phase = sim.leaderPhase(l.id);
  if (phase === 'transferring' || phase === 'handingOff') return `leader ${l.id} is ${phase}`;
  for (const v of sim.voterNames) {
    const n = sim.nodes.get(v)!;
    if (!n.alive || n.paused) return `voter ${v} is ${n.alive ? 'paused' : 'down'}`;
    const c = n.snapshot.context;
    if (c.term !== l.term || c.leader !== l.id)
      return `voter ${v} (${n.role}) follows ${c.leader}@${c.term}, not ${l.id}@${l.term}`;
    if (v !== l.id && n.role !== 'follower') return `voter ${v} is ${n.role}`;
  }
  return { leader: l.id, term: l.term };
}

export function runSchedule(s: Schedule, opts: { trace?: boolean } = {}): Outcome {
  const sim = new Simulator({ ...simOptions(s), trace: opts.trace === true });
  // An independent record of what was committed: the commit effects every robot reported.
  const committed: string[] = [];
  const checker = sim.checker;
  const original = checker.committed.bind(checker);
  checker.committed = (id, fromIndex, entries, atMs, term) => {
    entries.forEach((e, k) => {
      committed[fromIndex - 1 + k] ??= entryKey(e);
    });
    original(id, fromIndex, entries, atMs, term);
  };

  const problems: string[] = [];
  sim.run(); // boots every robot and runs the faulty period, up to and including the heal at H
  const H = s.healAtMs;
  const bound = H + quietBoundMs(TIMING, MAX_DELAY_MS);
  // Sample every heartbeat; pass when one agreement, first seen within the bound, then holds
  // unchanged for STABLE_MS (a leader whose lease was about to lapse at the heal does not count).
  let agreed: { leader: NodeId; term: number; since: number } | null = null;
  let settled = false;
  let why = 'never sampled';
  let committedAtAgreement = 0;
  let t = H;
  while (!settled && (agreed !== null || t < bound)) {
    t += TIMING.heartbeatMs;
    sim.runUntil(t);
    const a = agreement(sim);
    if (typeof a === 'string') {
      why = agreed
        ? `${agreed.leader}@${agreed.term} agreed at ${agreed.since} ms, then at ${t} ms: ${a}`
        : a;
      agreed = null;
    } else if (agreed === null || a.leader !== agreed.leader || a.term !== agreed.term) {
      if (agreed)
        why = `${agreed.leader}@${agreed.term} agreed at ${agreed.since} ms gave way to ${a.leader}@${a.term} at ${t} ms`;
      agreed = t <= bound ? { ...a, since: t } : null;
      committedAtAgreement = committed.length;
    } else if (t - agreed.since >= STABLE_MS) settled = true;
  }
  const convergedAfterMs = settled && agreed ? agreed.since - H : null;
  if (!settled) {
    problems.push(
      `liveness: no single leader, agreed by every voter, held for ${STABLE_MS} ms from within ${bound - H} ms after the heal at ${H} ms; last: ${why}`,
    );
  }
  const result = sim.result();

  // 1. Safety, as the checker saw it.
  for (const v of result.violations) problems.push(`${v.kind} at ${v.atMs} ms: ${v.detail}`);
  for (const c of result.timeline)
    if (sim.witnessNames.includes(c.leader))
      problems.push(`witness: ${c.leader} became leader at term ${c.term} at ${c.atMs} ms`);

  // 2. Durability, directly on the robots' durable state.
  const quorum = Math.floor(sim.voterNames.length / 2) + 1;
  const durable = new Map([...sim.nodes].map(([id, n]) => [id, n.durable.log.map(entryKey)]));
  for (let i = 0; i < committed.length; i++) {
    const key = committed[i];
    if (key === undefined) {
      problems.push(`durability: index ${i + 1} was never reported committed, but a later one was`);
      break;
    }
    const holders = sim.voterNames.filter((v) => durable.get(v)![i] === key).length;
    if (holders < quorum) {
      problems.push(
        `durability: committed entry ${i + 1} (${key}) is durable on ${holders} voters, fewer than a quorum of ${quorum}`,
      );
      break;
    }
  }
  for (const [id, log] of durable) {
    const n = sim.nodes.get(id)!;
    const isVoter = sim.voterNames.includes(id);
    // Every robot agrees with the committed prefix as far as its log goes. Voters must also hold every
    // entry committed by the time of agreement: the leader repaired them during the stable period
    // (entries committed since may still be on their way).
    const upTo = Math.max(Math.min(log.length, committed.length), isVoter ? committedAtAgreement : 0);
    for (let i = 0; i < upTo; i++) {
      if (log[i] !== committed[i]) {
        problems.push(
          `durability: ${id}'s durable log has ${log[i] ?? 'nothing'} at ${i + 1}, committed is ${committed[i]}`,
        );
        break;
      }
    }
    const c = n.snapshot.context;
    if (n.alive && c.commitIndex > committed.length)
      problems.push(`durability: ${id} commitIndex ${c.commitIndex} > ${committed.length} committed`);
  }
  if (settled && agreed) {
    const log = durable.get(agreed.leader)!;
    if (log.length < committed.length)
      problems.push(
        `durability: leader ${agreed.leader} holds ${log.length} of ${committed.length} committed entries`,
      );
  }
  return { result, problems, convergedAfterMs, simulatedMs: t };
}

// ---------------------------------------------------------------------------------------------
// The property runner: fast-check with replay, trace on failure, and throughput.

export interface RunStats {
  runs: number;
  wallMs: number;
  simulatedMs: number;
  elections: number;
  faults: number;
  maxConvergedAfterMs: number;
  sumConvergedAfterMs: number;
}

export function runsFromEnv(defaultRuns: number): number {
  const v = process.env.EDGECTL_PROPERTY_RUNS;
  if (!v) return defaultRuns;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`EDGECTL_PROPERTY_RUNS must be a positive integer, got "${v}"`);
  return n;
}

function replayParams(): { seed?: number; path?: string } {
  const seed = process.env.EDGECTL_PROPERTY_SEED;
  const path = process.env.EDGECTL_PROPERTY_PATH;
  return { ...(seed ? { seed: Number(seed) } : {}), ...(path ? { path } : {}) };
}

/**
 * checkSchedules runs `numRuns` schedules and throws a full report on the first failure (shrunk):
 * fast-check's seed and path, the schedule as an `edgectl sim` line, the problems and the trace tail.
 */
export function checkSchedules(
  label: string,
  arb: fc.Arbitrary<Schedule>,
  numRuns: number,
  file: string = import.meta.filename,
): RunStats {
  const stats: RunStats = {
    runs: 0,
    wallMs: 0,
    simulatedMs: 0,
    elections: 0,
    faults: 0,
    maxConvergedAfterMs: 0,
    sumConvergedAfterMs: 0,
  };
  const started = performance.now();
  const property = fc.property(arb, (s) => {
    const out = runSchedule(s);
    stats.runs++;
    stats.simulatedMs += out.simulatedMs;
    stats.elections += out.result.timeline.length;
    stats.faults += s.faults.length;
    if (out.convergedAfterMs !== null) {
      stats.maxConvergedAfterMs = Math.max(stats.maxConvergedAfterMs, out.convergedAfterMs);
      stats.sumConvergedAfterMs += out.convergedAfterMs;
    }
    if (out.problems.length > 0) throw new Error(out.problems.join('\n'));
  });
  const details = fc.check(property, { numRuns, ...replayParams() });
  stats.wallMs = performance.now() - started;
  if (details.failed) {
    const s = details.counterexample?.[0];
    let traceTail = '';
    if (s) {
      const out = runSchedule(s, { trace: true });
      traceTail = out.result.traces.slice(-60).join('\n');
    }
    throw new Error(
      [
        `${label}: property failed after ${details.numRuns} schedules (${details.numShrinks} shrinks)`,
        `replay: EDGECTL_PROPERTY_SEED=${details.seed} EDGECTL_PROPERTY_PATH=${JSON.stringify(details.counterexamplePath)} node --test ${file}`,
        `fast-check: { seed: ${details.seed}, path: ${JSON.stringify(details.counterexamplePath)} }`,
        s ? `schedule:\n    ${describeSchedule(s)}` : '',
        `problems:\n${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}`,
        traceTail ? `last trace lines:\n${traceTail}` : '',
      ].join('\n'),
    );
  }
  return stats;
}

export function formatStats(label: string, s: RunStats): string {
  const rate = s.runs / (s.wallMs / 1000);
  return (
    `${label}: ${s.runs} schedules in ${(s.wallMs / 1000).toFixed(1)} s = ${rate.toFixed(0)} schedules/s ` +
    `(${(s.simulatedMs / 1000).toFixed(0)} simulated s, ${(s.simulatedMs / s.wallMs) | 0}× real time); ` +
    `${s.faults} faults, ${s.elections} leader changes; single leader after heal: mean ` +
    `${(s.sumConvergedAfterMs / Math.max(1, s.runs)).toFixed(0)} ms, max ${s.maxConvergedAfterMs} ms, bound ${quietBoundMs(TIMING, MAX_DELAY_MS)} ms`
  );
}

// ---------------------------------------------------------------------------------------------
// Pure-function properties.

/** A log whose entry at index i of term t has data `t<t>i<i>`, so equal (index, term) means equal entry. */
const logOf = (terms: readonly number[]): LogEntry[] =>
  terms.map((term, i) => ({ term, kind: 'site', data: `t${term}i${i + 1}` }));
const nonDecreasing = (xs: readonly number[], from = 1): number[] => {
  let cur = from;
  return xs.map((d) => (cur += d));
};

/** Robot names for the fault round trip, dashes included (spot-2). */
const robotName = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,7}$/);
const robotTarget = fc.oneof(fc.constant('leader'), robotName);
export const faultArb: fc.Arbitrary<Fault> = fc.oneof(
  fc.record({
    kind: fc.constant('drop' as const),
    from: robotTarget,
    to: fc.oneof(robotTarget, fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,7}$/)),
    rate: fc.integer({ min: 0, max: 1000 }).map((k) => k / 1000),
  }),
  fc.record({ kind: fc.constant('cut' as const), a: robotTarget, b: robotTarget }),
  fc.record({
    kind: fc.constantFrom(
      'isolate' as const,
      'kill' as const,
      'restart' as const,
      'pause' as const,
      'resume' as const,
    ),
    node: robotTarget,
  }),
  fc
    .uniqueArray(robotName, { minLength: 2, maxLength: 7 })
    .chain((ids) =>
      fc
        .integer({ min: 1, max: ids.length - 1 })
        .map((cut): Fault => ({ kind: 'partition', groups: [ids.slice(0, cut), ids.slice(cut)] })),
    ),
  fc.constant({ kind: 'heal' } as const),
  fc.record({ kind: fc.constant('burst' as const), durationMs: fc.integer({ min: 0, max: 3_600_000 }) }),
  fc.oneof(
    fc.constant({ kind: 'transfer' } as const),
    fc.record({ kind: fc.constant('transfer' as const), to: robotTarget }),
  ),
);

function registerPureTests(): void {
  test('quorumMatch equals the naive majority oracle', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(50), { minLength: 1, maxLength: 7 }), (matches) => {
        const majority = Math.floor(matches.length / 2) + 1;
        let oracle = 0;
        for (const v of [0, ...matches])
          if (matches.filter((m) => m >= v).length >= majority) oracle = Math.max(oracle, v);
        assert.equal(quorumMatch(matches), oracle);
        // And it does not depend on the voters' order.
        assert.equal(quorumMatch([...matches].reverse()), oracle);
      }),
      { numRuns: 2000 },
    );
  });

  test('mergeEntries keeps Log Matching and never rewrites committed entries', () => {
    // A leader log L and a follower log F share a prefix of length k, then diverge (F's tail uses odd
    // terms, L's even ones, so equal (index, term) really means the same entry).
    const arb = fc
      .record({
        common: fc.array(fc.nat(1), { maxLength: 6 }),
        leaderTail: fc.array(fc.nat(1), { maxLength: 6 }),
        followerTail: fc.array(fc.nat(1), { maxLength: 6 }),
        p: fc.nat(20),
        m: fc.nat(8),
        commit: fc.nat(20),
      })
      .map(({ common, leaderTail, followerTail, p, m, commit }) => {
        const commonTerms = nonDecreasing(common, 0).map((t) => 2 * t + 2);
        const top = commonTerms.at(-1) ?? 0;
        const L = logOf([...commonTerms, ...nonDecreasing(leaderTail, 1).map((t) => top + 2 * t)]);
        const F = logOf([...commonTerms, ...nonDecreasing(followerTail, 0).map((t) => top + 2 * t + 1)]);
        const k = commonTerms.length;
        // The caller only merges after checking prevIndex matches, so prevIndex is in the common prefix.
        const prevIndex = p % (k + 1);
        const entries = L.slice(prevIndex, Math.min(L.length, prevIndex + m));
        return { L, F, k, prevIndex, entries, commitIndex: commit % (F.length + 1) };
      });
    fc.assert(
      fc.property(arb, ({ L, F, k, prevIndex, entries, commitIndex }) => {
        assert.equal(termAt(F, prevIndex), termAt(L, prevIndex));
        const r = mergeEntries(F, prevIndex, entries, commitIndex);
        const end = prevIndex + entries.length;
        // The first index where the Append disagrees with F (or none).
        let firstConflict: number | null = null;
        for (let i = prevIndex + 1; i <= end; i++) {
          if (i > F.length || F[i - 1]!.term !== L[i - 1]!.term) {
            firstConflict = i;
            break;
          }
        }
        if (firstConflict !== null && firstConflict <= commitIndex) {
          assert.equal(r.conflictWithCommitted, true);
          assert.deepEqual(r.log, F, 'a refused merge leaves the log alone');
          assert.equal(r.dirtyFrom, null);
          return;
        }
        assert.equal(r.conflictWithCommitted, false);
        assert.equal(r.matchIndex, end);
        if (firstConflict === null) {
          // Nothing new: the log is untouched, even its tail beyond the Append (a reordered old Append).
          assert.equal(r.dirtyFrom, null);
          assert.deepEqual(r.log, F);
        } else {
          assert.equal(r.dirtyFrom, firstConflict);
          assert.deepEqual(r.log, [...F.slice(0, firstConflict - 1), ...L.slice(firstConflict - 1, end)]);
        }
        // Log Matching: up to the match index the result is the leader's log; wherever the two logs
        // have an entry of the same term at the same index, they agree on everything before it.
        assert.deepEqual(r.log.slice(0, end), L.slice(0, end));
        for (let i = 1; i <= Math.min(r.log.length, L.length); i++) {
          if (r.log[i - 1]!.term === L[i - 1]!.term)
            assert.deepEqual(r.log.slice(0, i), L.slice(0, i), `log matching at ${i}`);
        }
        // Committed entries are never rewritten (they are in the common prefix here).
        assert.deepEqual(r.log.slice(0, Math.min(commitIndex, k)), F.slice(0, Math.min(commitIndex, k)));
        // Terms stay non-decreasing.
        for (let i = 1; i < r.log.length; i++) assert.ok(r.log[i - 1]!.term <= r.log[i]!.term);
      }),
      { numRuns: 3000 },
    );
  });

  test('isUpToDate is the lexicographic (lastTerm, lastIndex) total order', () => {
    const logArb = fc
      .array(fc.nat(2), { maxLength: 6 })
      .map((d) => logOf(nonDecreasing(d, 0).map((t) => t + 1)));
    const geq = (a: readonly LogEntry[], b: readonly LogEntry[]): boolean =>
      isUpToDate(b, lastIndex(a), lastTerm(a));
    fc.assert(
      fc.property(logArb, logArb, logArb, (a, b, c) => {
        const key = (x: readonly LogEntry[]): [number, number] => [lastTerm(x), lastIndex(x)];
        const [ta, ia] = key(a);
        const [tb, ib] = key(b);
        assert.equal(geq(a, b), ta > tb || (ta === tb && ia >= ib), 'matches the oracle');
        assert.ok(geq(a, a), 'reflexive');
        assert.ok(geq(a, b) || geq(b, a), 'total');
        if (geq(a, b) && geq(b, a))
          assert.deepEqual(key(a), key(b), 'antisymmetric on (lastTerm, lastIndex)');
        if (geq(a, b) && geq(b, c)) assert.ok(geq(a, c), 'transitive');
      }),
      { numRuns: 3000 },
    );
  });

  test('parseFault(formatFault(f)) round-trips, with and without a time', () => {
    fc.assert(
      fc.property(faultArb, fc.nat(100_000), (generated, atMs) => {
        const f = { ...generated }; // fc.record builds null-prototype objects
        assert.deepEqual(parseFault(formatFault(f)), f);
        assert.deepEqual(parseTimedFault(`${formatFault(f)}@${atMs}ms`), { atMs, fault: f });
      }),
      { numRuns: 3000 },
    );
  });

  test('parseFault(formatFault(f)) round-trips for dashed names and numbers written with exponents', () => {
    for (const f of [
      { kind: 'drop', from: 'spot-2', to: 'r1', rate: 0.3 },
      { kind: 'drop', from: 'r1', to: 'r2', rate: 1e-7 },
      { kind: 'burst', durationMs: 1e21 },
    ] satisfies Fault[]) {
      assert.deepEqual(parseFault(formatFault(f)), f);
    }
  });

  test('every generated schedule is valid in the fault vocabulary', () => {
    fc.assert(
      fc.property(scheduleArb(GENERAL_SHAPE), (s) => {
        const all = new Set(names(s));
        for (const f of simFaults(s)) {
          assert.deepEqual(parseTimedFault(`${formatFault(f.fault)}@${f.atMs}ms`), f);
          assert.ok(f.atMs <= s.healAtMs);
          const f2 = f.fault;
          if (f2.kind === 'burst')
            assert.ok(f.atMs + f2.durationMs < s.healAtMs, 'bursts end before the heal');
          if (f2.kind === 'partition') for (const g of f2.groups) for (const id of g) assert.ok(all.has(id));
        }
      }),
      { numRuns: 2000 },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// Regressions: the minimal reproductions of the bugs this property found, replayed on every run.

/** regressionSchedule turns a reproduction into a schedule (heal after the overlap it provoked). */
export function regressionSchedule(bug: Regression): Schedule {
  const r = REGRESSIONS[bug];
  return {
    voters: r.voters,
    learners: 0,
    seed: r.seed,
    loss: 0,
    delayMinMs: r.delay[0],
    delayMaxMs: r.delay[1],
    duplicateRate: 0,
    proposeEveryMs: null,
    faults: r.faults.map(parseTimedFault),
    healAtMs: 350,
  };
}

function registerRegressionTests(): void {
  for (const bug of Object.keys(REGRESSIONS) as Regression[]) {
    test(`regression ${bug}: the reproduction runs without a violation and converges`, () => {
      const s = regressionSchedule(bug);
      const sim = new Simulator({ ...simOptions(s), durationMs: s.healAtMs });
      assert.deepEqual(sim.run().violations, []);
      assert.deepEqual(runSchedule(s).problems, []);
    });
  }
}

// ---------------------------------------------------------------------------------------------

/** The number of schedules this file runs by default; election-pause.property.test.ts runs the rest of the 10,000. */
export const DEFAULT_GENERAL_RUNS = 5000;

/** isTestEntry: is `file` the test file this process runs (node --test runs each file in its own process)? */
export function isTestEntry(file: string): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(file);
  } catch {
    return false;
  }
}

if (isTestEntry(import.meta.filename)) {
  registerPureTests();
  registerRegressionTests();

  test('election: safety, durability and a single leader after healing, over random fault schedules', (t) => {
    const runs = runsFromEnv(DEFAULT_GENERAL_RUNS);
    const stats = checkSchedules('general faults', scheduleArb(GENERAL_SHAPE), runs);
    const line = formatStats('general faults', stats);
    t.diagnostic(line);
    console.log(line);
  });
}
