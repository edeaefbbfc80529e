/**
 * The deterministic fleet simulator: every robot runs the real election statechart, over an
 * in-process network with a simulated clock and a seeded RNG. It speaks the fault vocabulary of
 * lab/faults.ts, checks the safety invariants on every step (lab/sim/checker.ts) and measures
 * failovers. A run is a pure function of its options: the same seed gives the same result.
 */
import type { ElectionEvent, ElectionSnapshot, ElectionStep } from '../../statecharts/election.ts';
import { leaderPhaseOf, roleOf } from '../../statecharts/election.ts';
import type { Message, MessageType, NodeId } from '../../statecharts/messages.ts';
import { Rng } from '../../statecharts/rng.ts';
import type { ElectionTiming } from '../../statecharts/timing.ts';
import { formatFault, type Fault, type TimedFault } from '../faults.ts';
import { SafetyChecker, type Violation } from './checker.ts';
import { EventQueue } from './event-queue.ts';
import { SimNode, type HostPorts } from './sim-node.ts';

export interface BurstSpec {
  readonly startMs: number;
  readonly durationMs: number;
  /** Repeat every this many ms after the first, or once when absent. */
  readonly everyMs?: number;
}

export interface SimOptions {
  /** Robots of the site (voters first). */
  readonly nodes: number;
  readonly voters: number;
  /** Witness voters beside the robots (w1..wN): they vote and keep the log, but never lead. */
  readonly witnesses?: number;
  readonly seed: number;
  readonly durationMs: number;
  readonly timing: ElectionTiming;
  /** Independent loss probability per datagram. */
  readonly lossRate: number;
  /** One-way delay per datagram, uniform in [min, max] ms: random delays also reorder. */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  /** Probability that a datagram is delivered twice. */
  readonly duplicateRate: number;
  readonly bursts: readonly BurstSpec[];
  readonly faults: readonly TimedFault[];
  /** Propose a site log entry to the leader this often (ms), or never. */
  readonly proposeEveryMs: number | null;
  /** Keep the statechart's trace lines (costly; for debugging and goldens). */
  readonly trace: boolean;
  /** Robot names; default r1..rN. */
  readonly names?: readonly NodeId[];
  /** Fitness per robot (0..1); default 0.5 for all. */
  readonly fitness?: (id: NodeId, index: number) => number;
  /** Datastore replica position per robot (statecharts/election.ts setReplica); default none. */
  readonly replica?: (id: NodeId, index: number) => { epoch: number; revision: number } | null;
  /** Datagrams a paused robot's socket buffer holds; the rest are lost (Linux drops on a full buffer). */
  readonly pausedQueueLimit?: number;
  /** How each robot steps its statechart; default stepElection. Tests pass a checking one. */
  readonly step?: (snapshot: ElectionSnapshot, event: ElectionEvent) => ElectionStep;
}

export const defaultSimOptions = (timing: ElectionTiming): SimOptions => ({
  nodes: 5,
  voters: 5,
  seed: 1,
  durationMs: 60_000,
  timing,
  lossRate: 0,
  delayMinMs: 2, // a Wi-Fi LAN: a few ms one way
  delayMaxMs: 10,
  duplicateRate: 0,
  bursts: [],
  faults: [],
  proposeEveryMs: 5_000,
  trace: false,
});

export interface LeaderChange {
  readonly atMs: number;
  readonly leader: NodeId;
  readonly term: number;
  /** Why: first election, failover after a leader fault, transfer, or false (no leader fault). */
  readonly cause: 'first' | 'failover' | 'transfer' | 'false';
}

export interface Failover {
  readonly faultAtMs: number;
  readonly fault: string;
  readonly oldLeader: NodeId;
  readonly newLeader: NodeId;
  readonly latencyMs: number;
}

export interface SimResult {
  readonly seed: number;
  readonly durationMs: number;
  readonly nodes: number;
  readonly voters: number;
  readonly witnesses: number;
  readonly timeline: readonly LeaderChange[];
  readonly faultLog: readonly { atMs: number; fault: string; affectedLeader: boolean }[];
  readonly firstLeaderMs: number | null;
  readonly failovers: readonly Failover[];
  readonly transfers: readonly Failover[];
  /** Leader faults undone (healed, resumed) before another robot took over: the leader rode them out. */
  readonly riddenOutFaults: number;
  /** A leader fault still waiting for a new leader when the run ended. */
  readonly pendingFault: string | null;
  readonly falseFailovers: readonly LeaderChange[];
  readonly violations: readonly Violation[];
  readonly messages: {
    readonly sent: number;
    readonly delivered: number;
    readonly lost: number;
    readonly byType: Readonly<Record<MessageType, number>>;
  };
  readonly committedEntries: number;
  readonly finalLeader: NodeId | null;
  readonly finalTerm: number;
  readonly traces: readonly string[];
}

type SimEvent =
  | { readonly kind: 'deliver'; readonly msg: Message }
  /** A timer the node's driver armed; `fire` does nothing if the driver replaced or cancelled it. */
  | { readonly kind: 'timer'; readonly node: NodeId; readonly fire: () => void }
  | { readonly kind: 'fault'; readonly fault: Fault }
  | { readonly kind: 'propose' };

interface PendingFault {
  readonly atMs: number;
  readonly fault: string;
  readonly oldLeader: NodeId;
  readonly term: number;
  readonly transfer: boolean;
}

export class Simulator {
  readonly opts: SimOptions;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly names: readonly NodeId[];
  readonly voterNames: readonly NodeId[];
  readonly witnessNames: readonly NodeId[];
  readonly checker: SafetyChecker;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly rng: Rng;
  now = 0;
  private readonly pausedInbox = new Map<NodeId, SimEvent[]>();

  // Network state (the fault vocabulary).
  private readonly dropRates = new Map<string, number>();
  private readonly cuts = new Set<string>();
  private groups: Map<NodeId, number> | null = null;
  private readonly burstWindows: { start: number; end: number }[] = [];

  // Measurements.
  private readonly timeline: LeaderChange[] = [];
  private readonly faultLog: { atMs: number; fault: string; affectedLeader: boolean }[] = [];
  private readonly failovers: Failover[] = [];
  private readonly transfers: Failover[] = [];
  private readonly falseFailovers: LeaderChange[] = [];
  private pending: PendingFault | null = null;
  private riddenOut = 0;
  private proposals = 0;
  private readonly traces: string[] = [];
  private readonly msgStats = { sent: 0, delivered: 0, lost: 0, byType: {} as Record<MessageType, number> };
  /** The leader the run currently believes in: the holder of the highest term that became leader. */
  private leader: { id: NodeId; term: number } | null = null;

  constructor(opts: SimOptions) {
    const witnesses = opts.witnesses ?? 0;
    if (opts.voters < 1 || opts.voters > opts.nodes || opts.voters + witnesses > 7 || witnesses < 0) {
      throw new RangeError(
        `voters must be between 1 and nodes, and voters + witnesses at most 7; got ${opts.voters} voters and ${witnesses} witnesses of ${opts.nodes}`,
      );
    }
    this.opts = opts;
    this.rng = new Rng(opts.seed);
    const robots = opts.names ?? Array.from({ length: opts.nodes }, (_, i) => `r${i + 1}`);
    this.witnessNames = Array.from({ length: witnesses }, (_, i) => `w${i + 1}`);
    this.names = [...robots, ...this.witnessNames];
    this.voterNames = [...robots.slice(0, opts.voters), ...this.witnessNames];
    const learners = robots.slice(opts.voters);
    this.checker = new SafetyChecker();
    this.names.forEach((id, i) => {
      this.nodes.set(
        id,
        new SimNode({
          id,
          voters: this.voterNames,
          learners,
          witnesses: this.witnessNames,
          timing: opts.timing,
          seed: opts.seed,
          fitness: opts.fitness ? opts.fitness(id, i) : 0.5,
          ...(opts.replica?.(id, i) ? { replica: opts.replica(id, i)! } : {}),
          ...(opts.step ? { step: opts.step } : {}),
        }),
      );
    });
    for (const b of opts.bursts) {
      for (let t = b.startMs; t < opts.durationMs; t += b.everyMs ?? Infinity) {
        this.burstWindows.push({ start: t, end: t + b.durationMs });
        if (!b.everyMs) break;
      }
    }
    for (const f of opts.faults) this.queue.push(f.atMs, { kind: 'fault', fault: f.fault });
    if (opts.proposeEveryMs) this.queue.push(opts.proposeEveryMs, { kind: 'propose' });
  }

  /**
   * run boots every robot at t = 0 and runs to the end of the duration. `progress`, if given, is
   * called with the simulated time after every `stepMs` of it, so a long run can show how far it is.
   */
  run(progress?: (simulatedMs: number) => void, stepMs = 10_000): SimResult {
    this.bootAll();
    const end = this.opts.durationMs;
    for (let t = progress ? Math.min(stepMs, end) : end; ; t = Math.min(t + stepMs, end)) {
      this.runUntil(t);
      progress?.(t);
      if (t >= end) break;
    }
    return this.result();
  }

  /** bootAll powers every robot on at the current time (t = 0 before a run). */
  bootAll(): void {
    for (const n of this.nodes.values()) n.boot(this.hostPorts(n));
  }

  runUntil(endMs: number): void {
    for (;;) {
      const top = this.queue.peek();
      if (!top || top.at > endMs) break;
      this.queue.pop();
      this.now = top.at;
      this.dispatch(top.item);
    }
    this.now = endMs;
  }

  /** currentLeader is the robot that leads the highest term, if it is alive and still leading. */
  currentLeader(): NodeId | null {
    const l = this.leader;
    if (!l) return null;
    const n = this.nodes.get(l.id)!;
    return n.alive && n.role === 'leader' && n.term === l.term ? l.id : null;
  }

  // ------------------------------------------------------------------------------------------

  private dispatch(ev: SimEvent): void {
    switch (ev.kind) {
      case 'deliver': {
        const n = this.nodes.get(ev.msg.to);
        if (!n || !n.alive) return;
        if (n.paused) return this.queueWhilePaused(n.id, ev);
        this.msgStats.delivered++;
        this.feed(n, { type: 'message', msg: ev.msg, now: this.now });
        return;
      }
      case 'timer': {
        const n = this.nodes.get(ev.node)!;
        if (!n.alive) return;
        if (n.paused) return this.queueWhilePaused(n.id, ev);
        ev.fire();
        return;
      }
      case 'fault':
        return this.applyFault(ev.fault);
      case 'propose': {
        const l = this.currentLeader();
        if (l && !this.nodes.get(l)!.paused) {
          this.proposals++;
          this.feed(this.nodes.get(l)!, {
            type: 'propose',
            kind: 'site',
            data: `site-spec-v${this.proposals}`,
            now: this.now,
          });
        }
        if (this.opts.proposeEveryMs)
          this.queue.push(this.now + this.opts.proposeEveryMs, { kind: 'propose' });
        return;
      }
    }
  }

  private queueWhilePaused(id: NodeId, ev: SimEvent): void {
    const box = this.pausedInbox.get(id) ?? [];
    // Timers always wait for the robot; datagrams beyond the socket buffer are lost.
    if (
      ev.kind === 'deliver' &&
      box.filter((e) => e.kind === 'deliver').length >= (this.opts.pausedQueueLimit ?? 256)
    ) {
      this.msgStats.lost++;
      return;
    }
    box.push(ev);
    this.pausedInbox.set(id, box);
  }

  /** feed runs one event through a robot's driver, which runs its effects through hostPorts. */
  feed(n: SimNode, event: ElectionEvent): void {
    n.step(event);
  }

  /** hostPorts: the simulated clock, timers, network and checks a robot's driver runs against. */
  private hostPorts(n: SimNode): HostPorts {
    return {
      clock: { now: () => this.now },
      timers: {
        start: (_id, delayMs, fire) => {
          this.queue.push(this.now + delayMs, { kind: 'timer', node: n.id, fire });
        },
        // A cancelled timer stays queued; the driver ignores it when it comes due.
        cancel: () => {},
      },
      send: { send: (messages) => messages.forEach((m) => this.send(m)) },
      lifecycle: {
        startServer: (epoch) =>
          this.checker.serverStarted(n.id, epoch, this.now, this.servingElsewhere(n.id)),
        stopServer: (epoch) => this.checker.serverStopped(n.id, epoch, this.now),
        commit: (fromIndex, entries) => this.checker.committed(n.id, fromIndex, entries, this.now, n.term),
        trace: (text) => {
          if (this.opts.trace) this.traces.push(`${(this.now / 1000).toFixed(3)}s ${text}`);
          if (text.includes('INVARIANT')) this.checker.report('invariant', this.now, text);
        },
      },
      observer: {
        settled: (before, after) => {
          if (
            roleOf(after) === 'leader' &&
            (roleOf(before) !== 'leader' || before.context.term !== after.context.term)
          )
            this.onElected(n);
        },
      },
    };
  }

  /** servingElsewhere lists robots other than `id` whose server runs now (alive, not frozen). */
  private servingElsewhere(id: NodeId): { node: NodeId; epoch: number }[] {
    const out: { node: NodeId; epoch: number }[] = [];
    for (const [node, epoch] of this.checker.serving) {
      const n = this.nodes.get(node)!;
      if (node !== id && n.alive && !n.paused) out.push({ node, epoch });
    }
    return out;
  }

  private send(m: Message): void {
    this.msgStats.sent++;
    this.msgStats.byType[m.type] = (this.msgStats.byType[m.type] ?? 0) + 1;
    if (this.isLost(m.from, m.to)) {
      this.msgStats.lost++;
      return;
    }
    const delay = () =>
      this.opts.delayMinMs + (this.opts.delayMaxMs - this.opts.delayMinMs) * this.rng.next();
    this.queue.push(this.now + delay(), { kind: 'deliver', msg: m });
    if (this.rng.chance(this.opts.duplicateRate))
      this.queue.push(this.now + delay(), { kind: 'deliver', msg: m });
  }

  private isLost(from: NodeId, to: NodeId): boolean {
    if (this.cuts.has(`${from}|${to}`)) return true;
    if (this.groups && this.groups.get(from) !== this.groups.get(to)) return true;
    for (const w of this.burstWindows) if (this.now >= w.start && this.now < w.end) return true;
    const linkRate = this.dropRates.get(`${from}|${to}`) ?? 0;
    return this.rng.chance(Math.max(this.opts.lossRate, linkRate));
  }

  private canReach(a: NodeId, b: NodeId): boolean {
    if (a === b) return true;
    if (this.cuts.has(`${a}|${b}`)) return false;
    if (this.groups && this.groups.get(a) !== this.groups.get(b)) return false;
    return true;
  }

  /** leaderHealthy: the leader is up and can reach a quorum of live, running voters. */
  private leaderHealthy(id: NodeId): boolean {
    const n = this.nodes.get(id)!;
    if (!n.alive || n.paused) return false;
    const reachable = this.voterNames.filter((v) => {
      const x = this.nodes.get(v)!;
      return x.alive && !x.paused && this.canReach(id, v) && this.canReach(v, id);
    }).length;
    return reachable >= Math.floor(this.voterNames.length / 2) + 1;
  }

  private resolve(t: string): NodeId | null {
    if (t !== 'leader') return this.nodes.has(t) ? t : null;
    return this.currentLeader();
  }

  /** resolveAll expands 'all' to every robot; other targets resolve to at most one. */
  private resolveAll(t: string): NodeId[] {
    if (t === 'all') return [...this.names];
    const id = this.resolve(t);
    return id ? [id] : [];
  }

  applyFault(f: Fault): void {
    const leaderBefore = this.currentLeader();
    const label = formatFault(f);
    const resolveOrNote = (t: string): NodeId | null => {
      const id = this.resolve(t);
      if (id === null && this.opts.trace)
        this.traces.push(`${(this.now / 1000).toFixed(3)}s fault ${label}: no such robot now`);
      return id;
    };
    switch (f.kind) {
      case 'drop': {
        const a = resolveOrNote(f.from);
        const b = resolveOrNote(f.to);
        if (a && b) this.dropRates.set(`${a}|${b}`, f.rate);
        break;
      }
      case 'cut': {
        const a = resolveOrNote(f.a);
        const b = resolveOrNote(f.b);
        if (a && b) {
          this.cuts.add(`${a}|${b}`);
          this.cuts.add(`${b}|${a}`);
        }
        break;
      }
      case 'isolate': {
        const a = resolveOrNote(f.node);
        for (const b of a ? this.names : []) {
          if (b === a) continue;
          this.cuts.add(`${a}|${b}`);
          this.cuts.add(`${b}|${a}`);
        }
        break;
      }
      case 'partition': {
        const groups = new Map<NodeId, number>();
        f.groups.forEach((g, i) =>
          g.forEach((t) => {
            const id = resolveOrNote(t);
            if (id) groups.set(id, i);
          }),
        );
        // Robots the partition does not name form a group of their own.
        for (const n of this.names) if (!groups.has(n)) groups.set(n, -1);
        this.groups = groups;
        break;
      }
      case 'heal':
        this.dropRates.clear();
        this.cuts.clear();
        this.groups = null;
        break;
      case 'burst':
        this.burstWindows.push({ start: this.now, end: this.now + f.durationMs });
        break;
      case 'kill':
        for (const id of this.resolveAll(f.node)) {
          const n = this.nodes.get(id)!;
          if (!n.alive) continue;
          n.kill();
          this.checker.serverKilled(n.id, this.now);
          this.pausedInbox.delete(n.id);
        }
        break;
      case 'restart':
        for (const id of this.resolveAll(f.node)) {
          const n = this.nodes.get(id)!;
          if (!n.alive) n.boot(this.hostPorts(n));
        }
        break;
      case 'pause':
        for (const id of this.resolveAll(f.node)) {
          const n = this.nodes.get(id)!;
          if (n.alive) n.paused = true;
        }
        break;
      case 'resume':
        for (const id of this.resolveAll(f.node)) {
          const n = this.nodes.get(id)!;
          if (!n.alive || !n.paused) continue;
          n.paused = false;
          // The robot catches up at once: overdue timers and buffered datagrams, in arrival order.
          const box = this.pausedInbox.get(n.id) ?? [];
          this.pausedInbox.delete(n.id);
          for (const ev of box) this.dispatch(ev);
          this.checker.resumed(n.id, this.now, this.servingElsewhere(n.id));
        }
        break;
      case 'transfer': {
        const l = this.currentLeader();
        if (l) {
          const to = f.to ? (this.resolve(f.to) ?? undefined) : undefined;
          this.pending = {
            atMs: this.now,
            fault: label,
            oldLeader: l,
            term: this.nodes.get(l)!.term,
            transfer: true,
          };
          this.feed(
            this.nodes.get(l)!,
            to
              ? { type: 'transferLeadership', to, now: this.now }
              : { type: 'transferLeadership', now: this.now },
          );
        }
        break;
      }
    }
    const affected = leaderBefore !== null && !this.leaderHealthy(leaderBefore);
    this.faultLog.push({ atMs: this.now, fault: label, affectedLeader: affected });
    if (affected && (!this.pending || this.pending.transfer)) {
      this.pending = {
        atMs: this.now,
        fault: label,
        oldLeader: leaderBefore,
        term: this.nodes.get(leaderBefore)!.term,
        transfer: false,
      };
    }
    // A leader fault that was undone before anyone took over was ridden out, not failed over.
    if (
      this.pending &&
      !this.pending.transfer &&
      this.pending.oldLeader === this.currentLeader() &&
      this.leaderHealthy(this.pending.oldLeader)
    ) {
      this.pending = null;
      this.riddenOut++;
    }
  }

  private onElected(n: SimNode): void {
    const term = n.term;
    this.checker.elected(n.id, term, this.now, n.snapshot.context.log);
    if (this.leader && term <= this.leader.term) return; // a stale term; the checker has judged it
    let cause: LeaderChange['cause'];
    if (this.leader === null) cause = 'first';
    else if (this.pending) {
      cause = this.pending.transfer ? 'transfer' : 'failover';
      const f: Failover = {
        faultAtMs: this.pending.atMs,
        fault: this.pending.fault,
        oldLeader: this.pending.oldLeader,
        newLeader: n.id,
        latencyMs: this.now - this.pending.atMs,
      };
      (this.pending.transfer ? this.transfers : this.failovers).push(f);
      this.pending = null;
    } else cause = 'false';
    const change: LeaderChange = { atMs: this.now, leader: n.id, term, cause };
    this.timeline.push(change);
    if (cause === 'false') this.falseFailovers.push(change);
    this.leader = { id: n.id, term };
  }

  result(): SimResult {
    const first = this.timeline[0];
    const l = this.currentLeader();
    return {
      seed: this.opts.seed,
      durationMs: this.opts.durationMs,
      nodes: this.opts.nodes,
      voters: this.opts.voters,
      witnesses: this.witnessNames.length,
      timeline: this.timeline,
      faultLog: this.faultLog,
      firstLeaderMs: first ? first.atMs : null,
      failovers: this.failovers,
      transfers: this.transfers,
      riddenOutFaults: this.riddenOut,
      pendingFault: this.pending ? this.pending.fault : null,
      falseFailovers: this.falseFailovers,
      violations: this.checker.violations,
      messages: this.msgStats,
      committedEntries: this.checker.committedCount,
      finalLeader: l,
      finalTerm: l ? this.nodes.get(l)!.term : Math.max(...[...this.nodes.values()].map((n) => n.term)),
      traces: this.traces,
    };
  }

  /** servingPhase: for tests, the leader's sub-state. */
  leaderPhase(id: NodeId): string | null {
    return leaderPhaseOf(this.nodes.get(id)!.snapshot);
  }
}
