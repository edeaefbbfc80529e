/**
 * The scenario harness: an interaction environment for the election statechart, driven by the
 * commands of test/scenario/testdata/*.txt (the etcd-io/raft `rafttest.InteractionEnv` idea).
 *
 * It holds SimNodes (the real statechart plus its durable twin, test timing profile), a manual
 * clock, a queue of in-flight messages that is never delivered by itself, each node's armed timers,
 * and the network faults of lab/faults.ts. Nothing happens unless a command says so, which makes
 * every interleaving reproducible and every output a golden.
 *
 * Output conventions (see `log-level`):
 * - every line an event produced starts with the clock time of that event: `[120ms] ...`;
 * - `info`: the statechart's traces, server start/stop (and loss at power-off), commits, rejected
 *   proposals;
 * - `debug`: also every message sent (describeMessage), timers armed/disarmed/fired, leader changes
 *   and messages dropped at delivery (network fault, dead recipient, `deliver drop`);
 * - `none`: nothing;
 * - a command that printed nothing prints `ok`;
 * - whatever the log level, every new SafetyChecker violation is printed as `VIOLATION: ...`, so a
 *   golden cannot silently record a safety bug.
 */
import type { TimerId } from '../../statecharts/election.ts';
import { leaderPhaseOf, roleOf, type ElectionEvent } from '../../statecharts/election.ts';
import { describeMessage, type LogEntry, type Message, type NodeId } from '../../statecharts/messages.ts';
import { testTiming, type ElectionTiming } from '../../statecharts/timing.ts';
import { parseFault, type Fault } from '../../lab/faults.ts';
import { SafetyChecker } from '../../lab/sim/checker.ts';
import { SimNode, type HostPorts } from '../../lab/sim/sim-node.ts';
import type { CmdArg, TestCase } from './datadriven.ts';

export type LogLevel = 'none' | 'info' | 'debug';
const LEVELS: readonly LogLevel[] = ['none', 'info', 'debug'];
const TIMER_IDS: readonly TimerId[] = ['election', 'heartbeat', 'transfer'];
const NODE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** How many delivery rounds `stabilize` runs before it declares a livelock. */
export const MAX_STABILIZE_ROUNDS = 100;

export class HarnessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HarnessError';
  }
}

const fmtEntry = (e: LogEntry): string => `${e.term}:${e.kind}`;
const fmtEntryData = (e: LogEntry): string => (e.data === '' ? fmtEntry(e) : `${fmtEntry(e)}(${e.data})`);

export class ScenarioHarness {
  readonly timing: ElectionTiming;
  clock = 0;
  readonly nodes = new Map<NodeId, SimNode>();
  /** Node ids in creation order: the order of `state` and of tie-breaks. */
  readonly order: NodeId[] = [];
  /** In-flight messages, oldest first. */
  queue: Message[] = [];
  readonly checker = new SafetyChecker();
  level: LogLevel = 'info';

  private readonly cuts = new Set<string>();
  private groups: Map<NodeId, number> | null = null;
  private seq = 0;
  private reportedViolations = 0;
  private out: string[] = [];

  constructor(timing: ElectionTiming = testTiming) {
    this.timing = timing;
  }

  /** handle runs one datadriven command and returns its output. */
  handle(tc: TestCase): string {
    this.out = [];
    this.dispatch(tc.cmd, tc.args);
    const lines = this.out;
    this.out = [];
    const v = this.checker.violations;
    for (; this.reportedViolations < v.length; this.reportedViolations++) {
      const x = v[this.reportedViolations]!;
      lines.push(`VIOLATION: ${x.kind} at ${x.atMs}ms: ${x.detail}`);
    }
    return lines.length === 0 ? 'ok' : lines.join('\n');
  }

  private dispatch(cmd: string, args: readonly CmdArg[]): void {
    const a = new Args(cmd, args);
    // The commands, one example each (details at each case below):
    //   add-nodes 5 voters=3 fitness=0.5 seed=1   create and boot n1..n5; n4, n5 are learners
    //   campaign n1                               the `campaign` event (PreVote first)
    //   elapse 100 [stabilize]                    advance the clock, firing due timers in order
    //   fire n1 heartbeat                         fire one armed timer now (the clock does not move)
    //   deliver [from=n1] [to=n2] [drop]          deliver (or drop) the matching queued messages once
    //   stabilize                                 deliver until no message is queued (no time passes)
    //   partition n1,n2/n3   cut n1,n2   isolate n3   heal      network faults (lab/faults.ts)
    //   kill n1   restart n1                      power loss (durable state survives), power on
    //   propose n1 spec-v2                        the `propose` event (a `site` entry)
    //   transfer n1 [to=n3]                       the `transferLeadership` event
    //   state                                     one line per node
    //   log-level none|info|debug                 what later commands print
    switch (cmd) {
      // add-nodes 5 voters=3 fitness=0.5 seed=1
      //   Creates n1..n5 and boots them at the current clock. The first `voters` (default: all) vote,
      //   the rest are learners. fitness: one value for all or a comma list per node (default 0.5).
      //   seed: the run seed each node's PRNG is derived from (default 1). Only once per file.
      case 'add-nodes':
        return this.addNodes(a);

      // campaign n1
      //   The `campaign` event (like etcd's MsgHup): a voter starts a PreVote round now.
      case 'campaign': {
        const n = this.aliveNode(a.positional(0, 'node'));
        a.done();
        return this.feed(n.id, { type: 'campaign', now: this.clock });
      }

      // elapse 250            elapse 250 stabilize
      //   Advances the clock by 250 ms, firing every timer that falls due on the way in time order
      //   (ties: arming order); each timer event carries its due time as `now`. Messages the timers
      //   produce stay queued. With `stabilize`, the network is stabilized (as by `stabilize`) before
      //   the first timer and after each timer fires: a zero-latency LAN, for long stretches of time.
      case 'elapse': {
        const ms = a.number(0, 'ms');
        const stab = a.flag('stabilize');
        a.done();
        return this.elapse(ms, stab);
      }

      // fire n1 heartbeat
      //   Fires one armed timer (election | heartbeat | transfer) of a node right now, as if it were
      //   due, and disarms it. The clock does NOT move (so it never runs backwards or skips other
      //   timers): the event's `now` is the current clock. The statechart re-checks elapsed time where
      //   it matters, so a follower's election timer fired before its randomized timeout has elapsed
      //   is merely re-armed; use `elapse` to let a follower time out, or `campaign`.
      case 'fire': {
        const n = this.aliveNode(a.positional(0, 'node'));
        const id = a.positional(1, 'timer') as TimerId;
        a.done();
        if (!TIMER_IDS.includes(id))
          throw new HarnessError(`fire: unknown timer "${id}" (use ${TIMER_IDS.join(', ')})`);
        const t = n.driver!.armed().find((x) => x.id === id);
        if (!t) throw new HarnessError(`fire: ${n.id} has no ${id} timer armed`);
        this.debug(this.clock, `${n.id} timer ${id} fired (due at ${t.due}ms)`);
        n.driver!.fire(id);
        return;
      }

      // deliver                deliver from=n1 to=n2          deliver to=n3 drop
      //   Delivers (or, with `drop`, discards) the queued messages that match the filter, in queue
      //   order, once: replies they cause are queued, not delivered. Messages between nodes that a
      //   network fault separates, or to a dead node, are dropped at delivery.
      case 'deliver': {
        const from = a.named('from');
        const to = a.named('to');
        const drop = a.flag('drop');
        a.done();
        for (const id of [from, to]) if (id !== null) this.node(id);
        return this.deliver((m) => (from === null || m.from === from) && (to === null || m.to === to), drop);
      }

      // stabilize
      //   Delivers rounds of messages until none is queued. No time passes. Fails after
      //   MAX_STABILIZE_ROUNDS rounds (a message livelock).
      case 'stabilize':
        a.done();
        return this.stabilize();

      // partition n1,n2/n3,n4,n5     cut n1,n2     isolate n3     heal
      //   The network faults of lab/faults.ts (`leader` names the current leader). Only robots in the
      //   same group hear each other (unnamed ones form a group of their own); cut separates two
      //   robots; isolate cuts one from all; heal undoes them all. Applied when a message is delivered.
      case 'partition':
      case 'cut':
      case 'isolate': {
        const spec = a.positional(0, cmd === 'isolate' ? 'node' : 'groups');
        a.done();
        return this.applyFault(parseFault(`${cmd}:${spec}`));
      }
      case 'heal':
        a.done();
        return this.applyFault({ kind: 'heal' });

      // kill n1
      //   Power loss: volatile state and timers are gone, a running server dies with the robot, the
      //   durable state (term, vote, log) stays. Messages it already sent stay in flight.
      case 'kill': {
        const n = this.aliveNode(a.positional(0, 'node'));
        a.done();
        n.kill();
        const epoch = this.checker.serving.get(n.id);
        if (epoch !== undefined) this.info(this.clock, `${n.id} server LOST epoch=${epoch}: power loss`);
        this.checker.serverKilled(n.id, this.clock);
        return;
      }

      // restart n1
      //   Power on after a kill: the node boots from its durable state at the current clock.
      case 'restart': {
        const n = this.node(a.positional(0, 'node'));
        a.done();
        if (n.alive) throw new HarnessError(`restart: ${n.id} is running (kill it first)`);
        return n.boot(this.hostPorts(n));
      }

      // replica n2 epoch=1 rev=900
      //   The `setReplica` event: the position of the node's datastore replica (epoch 0, rev 0: none).
      case 'replica': {
        const n = this.aliveNode(a.positional(0, 'node'));
        const epoch = Number(a.named('epoch') ?? 0);
        const revision = Number(a.named('rev') ?? 0);
        a.done();
        return this.feed(n.id, { type: 'setReplica', epoch, revision, now: this.clock });
      }

      // propose n1 spec-v2
      //   The `propose` event: append a `site` entry with this data (leader only; others reject it).
      case 'propose': {
        const n = this.aliveNode(a.positional(0, 'node'));
        const data = a.positional(1, 'data');
        a.done();
        return this.feed(n.id, { type: 'propose', kind: 'site', data, now: this.clock });
      }

      // transfer n1              transfer n1 to=n3
      //   The `transferLeadership` event, to a named voter or to the best one.
      case 'transfer': {
        const n = this.aliveNode(a.positional(0, 'node'));
        const to = a.named('to');
        a.done();
        if (to !== null) this.node(to);
        return this.feed(
          n.id,
          to === null
            ? { type: 'transferLeadership', now: this.clock }
            : { type: 'transferLeadership', to, now: this.clock },
        );
      }

      // state
      //   One line per node: role (leader phase), term, vote, leader, commit index, log as term:kind,
      //   and the server epoch if it serves. A dead node shows its durable state.
      case 'state':
        a.done();
        return this.printState();

      // log-level debug
      //   What later commands print: none | info | debug (see the file header).
      case 'log-level': {
        const lvl = a.positional(0, 'level') as LogLevel;
        a.done();
        if (!LEVELS.includes(lvl))
          throw new HarnessError(`log-level: unknown level "${lvl}" (use ${LEVELS.join(', ')})`);
        this.level = lvl;
        return;
      }

      default:
        throw new HarnessError(
          `unknown command "${cmd}" (known: add-nodes, campaign, elapse, fire, deliver, stabilize, partition, cut, isolate, heal, kill, restart, propose, transfer, state, log-level)`,
        );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Commands.

  private addNodes(a: Args): void {
    const count = a.number(0, 'count');
    const voters = a.named('voters') === null ? count : a.namedNumber('voters');
    const seed = a.named('seed') === null ? 1 : a.namedNumber('seed');
    const fitnessArg = a.named('fitness');
    a.done();
    if (this.order.length > 0)
      throw new HarnessError('add-nodes: nodes already exist (add them in one command)');
    if (!Number.isInteger(count) || count < 1)
      throw new HarnessError(`add-nodes: count must be a positive integer`);
    if (!Number.isInteger(voters) || voters < 1 || voters > Math.min(7, count)) {
      throw new HarnessError(`add-nodes: voters must be between 1 and min(7, ${count})`);
    }
    const fitness = (fitnessArg ?? '0.5').split(',').map(Number);
    if (fitness.some((f) => !Number.isFinite(f)) || (fitness.length !== 1 && fitness.length !== count)) {
      throw new HarnessError(`add-nodes: fitness must be one number or ${count} comma-separated numbers`);
    }
    const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    const voterIds = ids.slice(0, voters);
    const learners = ids.slice(voters);
    ids.forEach((id, i) => {
      this.nodes.set(
        id,
        new SimNode({
          id,
          voters: voterIds,
          learners,
          timing: this.timing,
          seed,
          fitness: fitness[fitness.length === 1 ? 0 : i]!,
        }),
      );
      this.order.push(id);
    });
    for (const id of ids) {
      const n = this.nodes.get(id)!;
      n.boot(this.hostPorts(n));
    }
  }

  private elapse(ms: number, stab: boolean): void {
    if (!(ms >= 0)) throw new HarnessError('elapse: ms must be ≥ 0');
    const target = this.clock + ms;
    if (stab) this.stabilize();
    for (;;) {
      const next = this.nextTimer(target);
      if (!next) break;
      this.clock = next.due;
      this.debug(this.clock, `${next.node} timer ${next.id} fired`);
      this.nodes.get(next.node)!.driver!.fire(next.id);
      if (stab) this.stabilize();
    }
    this.clock = target;
  }

  /** nextTimer: the earliest armed timer due at or before `until` (ties: arming order). */
  private nextTimer(until: number): { node: NodeId; id: TimerId; due: number } | null {
    let best: { node: NodeId; id: TimerId; due: number; seq: number } | null = null;
    for (const n of this.nodes.values()) {
      if (!n.alive) continue;
      for (const t of n.driver!.armed()) {
        // The handle is the harness's arming sequence number (hostPorts).
        const seq = t.handle as number;
        if (t.due > until) continue;
        if (!best || t.due < best.due || (t.due === best.due && seq < best.seq))
          best = { node: n.id, id: t.id, due: t.due, seq };
      }
    }
    return best;
  }

  private deliver(match: (m: Message) => boolean, drop: boolean): void {
    const batch = this.queue.filter(match);
    this.queue = this.queue.filter((m) => !match(m));
    for (const m of batch) this.deliverOne(m, drop);
  }

  private deliverOne(m: Message, drop: boolean): void {
    const to = this.nodes.get(m.to);
    if (drop) return this.debug(this.clock, `dropped ${describeMessage(m)}`);
    if (!to || !to.alive) return this.debug(this.clock, `dropped ${describeMessage(m)}: ${m.to} is down`);
    if (this.separated(m.from, m.to))
      return this.debug(this.clock, `dropped ${describeMessage(m)}: network fault`);
    this.feed(m.to, { type: 'message', msg: m, now: this.clock });
  }

  private stabilize(): void {
    for (let round = 0; this.queue.length > 0; round++) {
      if (round >= MAX_STABILIZE_ROUNDS) {
        throw new HarnessError(
          `stabilize: messages still queued after ${MAX_STABILIZE_ROUNDS} rounds (livelock?): ${this.queue.map(describeMessage).slice(0, 5).join('; ')}`,
        );
      }
      this.deliver(() => true, false);
    }
  }

  private applyFault(f: Fault): void {
    const resolve = (t: string): NodeId => (t === 'leader' ? this.currentLeader() : this.node(t).id);
    switch (f.kind) {
      case 'cut': {
        const x = resolve(f.a);
        const y = resolve(f.b);
        this.cuts.add(`${x}|${y}`).add(`${y}|${x}`);
        return;
      }
      case 'isolate': {
        const x = resolve(f.node);
        for (const y of this.order) if (y !== x) this.cuts.add(`${x}|${y}`).add(`${y}|${x}`);
        return;
      }
      case 'partition': {
        const groups = new Map<NodeId, number>();
        f.groups.forEach((g, i) => g.forEach((t) => groups.set(resolve(t), i)));
        for (const id of this.order) if (!groups.has(id)) groups.set(id, -1);
        this.groups = groups;
        return;
      }
      case 'heal':
        this.cuts.clear();
        this.groups = null;
        return;
      default:
        throw new HarnessError(`fault ${f.kind} is not a network fault of this harness`);
    }
  }

  private separated(a: NodeId, b: NodeId): boolean {
    if (this.cuts.has(`${a}|${b}`)) return true;
    return this.groups !== null && this.groups.get(a) !== this.groups.get(b);
  }

  private printState(): void {
    for (const id of this.order) {
      const n = this.nodes.get(id)!;
      const learner = n.alive ? !n.snapshot.context.voters.includes(id) : false;
      if (!n.alive) {
        const d = n.durable;
        this.out.push(
          `${id} down term=${d.term} vote=${d.votedFor ?? '-'} log=[${d.log.map(fmtEntry).join(' ')}]`,
        );
        continue;
      }
      const c = n.snapshot.context;
      const phase = leaderPhaseOf(n.snapshot);
      const role = phase ? `leader(${phase})` : n.role;
      const server = c.serverEpoch === null ? '' : ` server=${c.serverEpoch}`;
      this.out.push(
        `${id} ${role}${learner ? ' (learner)' : ''} term=${c.term} vote=${c.votedFor ?? '-'} leader=${c.leader ?? '-'} commit=${c.commitIndex} log=[${c.log.map(fmtEntry).join(' ')}]${server}`,
      );
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Running the statechart.

  private feed(id: NodeId, event: ElectionEvent): void {
    this.aliveNode(id).step(event);
  }

  /**
   * hostPorts: the harness's manual clock and timer table, its message queue, and what it prints.
   * Every event of a command happens at the harness clock, so `now` below is that clock.
   */
  private hostPorts(n: SimNode): HostPorts {
    return {
      clock: { now: () => this.clock },
      timers: {
        start: (id, delayMs) => {
          this.debug(this.clock, `${n.id} timer ${id} armed, due at ${this.clock + delayMs}ms`);
          return this.seq++;
        },
        // Only an explicit disarm is news; a timer replaced, fired or lost with its robot is not.
        cancel: (_handle, id, reason) => {
          if (reason === 'disarmed') this.debug(this.clock, `${n.id} timer ${id} disarmed`);
        },
      },
      send: {
        send: (messages) => {
          for (const m of messages) {
            this.queue.push(m);
            this.debug(this.clock, describeMessage(m));
          }
        },
      },
      lifecycle: {
        startServer: (epoch) => {
          this.info(this.clock, `${n.id} server START epoch=${epoch}`);
          this.checker.serverStarted(n.id, epoch, this.clock, this.servingElsewhere(n.id));
        },
        stopServer: (epoch, reason) => {
          this.info(this.clock, `${n.id} server STOP epoch=${epoch}: ${reason}`);
          this.checker.serverStopped(n.id, epoch, this.clock);
        },
        commit: (fromIndex, entries) => {
          const to = fromIndex + entries.length - 1;
          const range = to === fromIndex ? `${to}` : `${fromIndex}..${to}`;
          this.info(this.clock, `${n.id} committed ${range}: ${entries.map(fmtEntryData).join(' ')}`);
          this.checker.committed(n.id, fromIndex, entries, this.clock, n.term);
        },
        proposalRejected: (reason, leader) =>
          this.info(this.clock, `${n.id} rejected proposal: ${reason} (leader ${leader ?? '-'})`),
        leaderChanged: (leader, term) =>
          this.debug(this.clock, `${n.id} leader is ${leader ?? '-'} at term ${term}`),
        trace: (text) => {
          this.info(this.clock, text);
          if (text.includes('INVARIANT')) this.checker.report('invariant', this.clock, text);
        },
      },
      observer: {
        settled: (before, after, event) => {
          if (
            roleOf(after) === 'leader' &&
            (roleOf(before) !== 'leader' || before.context.term !== after.context.term)
          )
            this.checker.elected(n.id, after.context.term, event.now, after.context.log);
        },
      },
    };
  }

  private servingElsewhere(id: NodeId): { node: NodeId; epoch: number }[] {
    const out: { node: NodeId; epoch: number }[] = [];
    for (const [node, epoch] of this.checker.serving)
      if (node !== id && this.nodes.get(node)!.alive) out.push({ node, epoch });
    return out;
  }

  /** currentLeader: the live leader of the highest term (for the `leader` fault target). */
  private currentLeader(): NodeId {
    let best: SimNode | null = null;
    for (const id of this.order) {
      const n = this.nodes.get(id)!;
      if (n.alive && n.role === 'leader' && (!best || n.term > best.term)) best = n;
    }
    if (!best) throw new HarnessError('no node leads now: "leader" names nobody');
    return best.id;
  }

  private node(id: string): SimNode {
    const n = this.nodes.get(id);
    if (!n)
      throw new HarnessError(`unknown node "${id}"${NODE_ID.test(id) ? '' : ' (node ids are [a-z0-9-])'}`);
    return n;
  }

  private aliveNode(id: string): SimNode {
    const n = this.node(id);
    if (!n.alive) throw new HarnessError(`${id} is down (restart it first)`);
    return n;
  }

  private info(now: number, text: string): void {
    if (this.level !== 'none') this.out.push(`[${now}ms] ${text}`);
  }

  private debug(now: number, text: string): void {
    if (this.level === 'debug') this.out.push(`[${now}ms] ${text}`);
  }
}

/** Args: strict access to a command's arguments; `done` rejects any it did not read. */
class Args {
  private readonly cmd: string;
  private readonly args: readonly CmdArg[];
  private readonly used = new Set<number>();

  constructor(cmd: string, args: readonly CmdArg[]) {
    this.cmd = cmd;
    this.args = args;
  }

  positional(i: number, what: string): string {
    let k = -1;
    for (let j = 0; j < this.args.length; j++) {
      if (this.args[j]!.value !== null) continue;
      if (++k === i) {
        this.used.add(j);
        return this.args[j]!.key;
      }
    }
    throw new HarnessError(`${this.cmd}: missing <${what}>`);
  }

  number(i: number, what: string): number {
    const s = this.positional(i, what);
    const v = Number(s);
    if (s === '' || !Number.isFinite(v))
      throw new HarnessError(`${this.cmd}: <${what}> must be a number, got "${s}"`);
    return v;
  }

  named(key: string): string | null {
    const j = this.args.findIndex((x) => x.key === key && x.value !== null);
    if (j < 0) return null;
    this.used.add(j);
    return this.args[j]!.value;
  }

  namedNumber(key: string): number {
    const s = this.named(key) ?? '';
    const v = Number(s);
    if (s === '' || !Number.isFinite(v))
      throw new HarnessError(`${this.cmd}: ${key}= must be a number, got "${s}"`);
    return v;
  }

  /** flag: a bare word such as `drop` or `stabilize`. */
  flag(word: string): boolean {
    const j = this.args.findIndex((x) => x.key === word && x.value === null);
    if (j < 0) return false;
    this.used.add(j);
    return true;
  }

  done(): void {
    const extra = this.args.filter((_, j) => !this.used.has(j));
    if (extra.length > 0) {
      throw new HarnessError(
        `${this.cmd}: unexpected argument(s) ${extra.map((x) => (x.value === null ? x.key : `${x.key}=${x.value}`)).join(' ')}`,
      );
    }
  }
}
