/**
 * Running one campaign schedule in the deterministic simulator and recording its history for the
 * invariants (invariants.ts). The simulator's own SafetyChecker runs too; both must stay silent.
 *
 * Clock jumps: the shell gives the election a monotonic `now` (the agent: performance.now()), so a
 * jump of a robot's wall clock changes nothing the election sees; in the default `monotonic` mode
 * the jumps are recorded and the core never hears of them. The `wall` mode is a deliberately wrong
 * shell that feeds each robot's wall clock (simulated time plus that robot's jumps) to its
 * statechart: campaign.test.ts uses it to show that the campaign catches a shell that reads the
 * wall clock.
 */
import { Simulator, defaultSimOptions, type SimOptions } from '../../lab/sim/simulator.ts';
import type { SimNode } from '../../lab/sim/sim-node.ts';
import { leaderPhaseOf } from '../../statecharts/election.ts';
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';
import { TIMING_PROFILES, fenceDelayMs, type ElectionTiming } from '../../statecharts/timing.ts';
import {
  checkHistory,
  convergedAt,
  type ConvergenceRule,
  type History,
  type HistoryEvent,
  type InvariantViolation,
  type Sample,
} from './invariants.ts';
import { robotNames, type CampaignSchedule } from './schedule.ts';

export type ClockMode = 'monotonic' | 'wall';

export interface Outcome {
  readonly schedule: CampaignSchedule;
  readonly history: History;
  /** The campaign's invariants, judged on the history. */
  readonly violations: readonly InvariantViolation[];
  /** The simulator's own checker (two-leaders, overlapping-epochs, lost-commit, divergent-commit, invariant). */
  readonly simViolations: readonly string[];
  readonly convergedAfterMs: number | null;
  readonly failoverLatenciesMs: readonly number[];
  readonly leaderChanges: number;
  readonly falseFailovers: number;
  readonly simulatedMs: number;
  readonly traces: readonly string[];
}

const ELECTION_ROUNDS = 8;

/**
 * convergenceRule: how long after the heal a single agreed leader must exist, and how long it must
 * hold. The bound is the one of test/property (quietBoundMs), for this schedule's timing and delay:
 * every lease and stickiness window from before the heal runs out, then up to ELECTION_ROUNDS
 * elections (each a full election timeout plus two round trips, for split votes), then the fence
 * delay and two heartbeats. It holds for one lease plus a heartbeat: no flapping once healed.
 */
export function convergenceRule(t: ElectionTiming, maxDelayMs: number): ConvergenceRule {
  return {
    boundMs:
      Math.max(t.electionTimeoutMinMs, t.leaderLeaseMs) +
      ELECTION_ROUNDS * (t.electionTimeoutMaxMs + 4 * maxDelayMs) +
      fenceDelayMs(t) +
      2 * (t.heartbeatMs + maxDelayMs),
    stableMs: t.leaderLeaseMs + t.heartbeatMs,
  };
}

const entryKey = (e: LogEntry): string => `${e.term}:${e.kind}:${e.data}`;

/** agreement: the one settled leader that every voter follows at its term, or why there is none. */
function agreement(sim: Simulator): { leader: NodeId; term: number } | string {
  const leaders = [...sim.nodes.values()].filter((n) => n.alive && n.role === 'leader');
  if (leaders.length !== 1)
    return `${leaders.length} leaders (${leaders.map((l) => `${l.id}@${l.term}`).join(', ') || 'none'})`;
  const l = leaders[0]!;
  if (l.paused) return `leader ${l.id} is paused`;
  const phase = leaderPhaseOf(l.snapshot);
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

export function simOptionsOf(s: CampaignSchedule, trace = false): SimOptions {
  const timing = TIMING_PROFILES[s.profile];
  const names = robotNames(s);
  return {
    ...defaultSimOptions(timing),
    nodes: names.length,
    voters: s.voters,
    seed: s.simSeed,
    durationMs: 0, // runCampaignSchedule drives the clock itself
    delayMinMs: s.delayMinMs,
    delayMaxMs: s.delayMaxMs,
    duplicateRate: s.duplicateRate,
    proposeEveryMs: s.proposeEveryMs,
    faults: [
      ...s.faults,
      { atMs: s.healAtMs, fault: { kind: 'heal' } },
      { atMs: s.healAtMs, fault: { kind: 'restart', node: 'all' } },
      { atMs: s.healAtMs, fault: { kind: 'resume', node: 'all' } },
    ],
    trace,
  };
}

/** runCampaignSchedule runs a schedule through the heal and the convergence period and judges it. */
export function runCampaignSchedule(
  s: CampaignSchedule,
  opts: { clock?: ClockMode; trace?: boolean } = {},
): Outcome {
  const sim = new Simulator(simOptionsOf(s, opts.trace === true));
  const timing = sim.opts.timing;
  const events: HistoryEvent[] = [];
  const checker = sim.checker;

  // Record what the checker hears.
  const started = checker.serverStarted.bind(checker);
  checker.serverStarted = (id, epoch, atMs, others) => {
    events.push({ t: atMs, kind: 'server-start', node: id, epoch });
    started(id, epoch, atMs, others);
  };
  const stopped = checker.serverStopped.bind(checker);
  checker.serverStopped = (id, epoch, atMs) => {
    events.push({ t: atMs, kind: 'server-stop', node: id, epoch });
    stopped(id, epoch, atMs);
  };
  const resumed = checker.resumed.bind(checker);
  checker.resumed = (id, atMs, others) => {
    events.push({ t: atMs, kind: 'resume', node: id });
    resumed(id, atMs, others);
  };
  const elected = checker.elected.bind(checker);
  checker.elected = (id, term, atMs, log) => {
    events.push({ t: atMs, kind: 'elected', node: id, term, log: log.map(entryKey) });
    elected(id, term, atMs, log);
  };
  const committed = checker.committed.bind(checker);
  checker.committed = (id, fromIndex, entries, atMs, term) => {
    entries.forEach((e, k) =>
      events.push({ t: atMs, kind: 'commit', node: id, index: fromIndex + k, entry: entryKey(e), term }),
    );
    committed(id, fromIndex, entries, atMs, term);
  };
  // Power and freezes: what a fault did, read off the robots before and after it.
  const applyFault = sim.applyFault.bind(sim);
  sim.applyFault = (f) => {
    const before = new Map([...sim.nodes].map(([id, n]) => [id, { alive: n.alive, paused: n.paused }]));
    applyFault(f);
    for (const [id, n] of sim.nodes) {
      const b = before.get(id)!;
      if (b.alive && !n.alive) events.push({ t: sim.now, kind: 'kill', node: id });
      else if (!b.alive && n.alive) events.push({ t: sim.now, kind: 'restart', node: id });
      else if (n.alive && !b.paused && n.paused) events.push({ t: sim.now, kind: 'pause', node: id });
    }
  };

  // Wall clocks: an offset per robot, fed to the statechart only by the (wrong) wall-clock shell.
  const wallOffset = new Map<NodeId, number>();
  if (opts.clock === 'wall') {
    for (const n of sim.nodes.values()) wallShell(n, () => wallOffset.get(n.id) ?? 0);
  }

  sim.run(); // boots every robot at t = 0
  for (const j of s.clockJumps) {
    sim.runUntil(j.atMs);
    const id = j.node === 'leader' ? sim.currentLeader() : j.node;
    if (id) wallOffset.set(id, (wallOffset.get(id) ?? 0) + j.deltaMs);
  }
  sim.runUntil(s.healAtMs);

  const rule = convergenceRule(timing, s.delayMaxMs);
  const samples: Sample[] = [];
  const end = s.healAtMs + rule.boundMs + rule.stableMs;
  let t = s.healAtMs;
  // The convergence rule reads only the samples: judge it on a view without the durable logs.
  const sampled: History = {
    voters: sim.voterNames,
    events,
    healAtMs: s.healAtMs,
    samples,
    finalDurableLogs: {},
  };
  while (t < end) {
    t += timing.heartbeatMs;
    sim.runUntil(t);
    const a = agreement(sim);
    samples.push(typeof a === 'string' ? { t, none: a } : { t, ...a });
    // Stop sampling as soon as the convergence rule is met (the rest of the bound adds nothing).
    if (typeof a !== 'string' && 'afterMs' in convergedAt(sampled, rule)) break;
  }
  const history: History = {
    ...sampled,
    finalDurableLogs: Object.fromEntries([...sim.nodes].map(([id, n]) => [id, n.durable.log.map(entryKey)])),
  };
  const result = sim.result();
  const c = convergedAt(history, rule);
  return {
    schedule: s,
    history,
    violations: checkHistory(history, rule),
    simViolations: result.violations.map((v) => `${v.kind} at ${v.atMs} ms: ${v.detail}`),
    convergedAfterMs: 'afterMs' in c ? c.afterMs : null,
    failoverLatenciesMs: result.failovers.map((f) => f.latencyMs),
    leaderChanges: result.timeline.length,
    falseFailovers: result.falseFailovers.length,
    simulatedMs: t,
    traces: result.traces,
  };
}

/** wallShell makes a robot's statechart see `now` plus its wall-clock offset (the wrong shell). */
function wallShell(n: SimNode, offset: () => number): void {
  n.nowShift = offset;
}

/** problemsOf: every violation of an outcome, as lines. */
export function problemsOf(o: Outcome): string[] {
  return [
    ...o.violations.map((v) => `${v.invariant} at ${v.atMs} ms: ${v.detail}`),
    ...o.simViolations.map((v) => `simulator checker: ${v}`),
  ];
}
