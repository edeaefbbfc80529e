/**
 * ElectionDriver: the one loop that runs the election statechart for a shell. The robot agent
 * (agent/agent.ts), the simulator (lab/sim/simulator.ts) and the scenario harness
 * (test/scenario/harness.ts) all drive the core through it, so the three cannot disagree about
 * what an effect means or in which order effects run.
 *
 * It owns the election snapshot and the timer table, and runs each step's effects through five
 * small ports. It does no I/O of its own and reads no clock: time comes from the Clock port, timers
 * are scheduled through the Timers port, so it is as pure as the machine (the simulator and the
 * harness give it simulated time).
 *
 * The order of one step, like etcd's Ready:
 *   1. persist     persistHardState, then persistLog. Each returns only once durable: a vote or
 *                  an entry is on disk before any message that depends on it leaves (step 3).
 *   2. lifecycle   stopServer: before any send, so a demoted server stops before the robot
 *                  answers the higher term.
 *   3. send        the step's messages, in order.
 *   4. lifecycle   startServer, then commit (newly committed entries, in index order), then
 *                  leaderChanged, proposalRejected and trace lines.
 *   Timer effects come where the machine placed them among these (mostly after the step's sends):
 *   armTimer replaces the pending timer of that id, disarmTimer cancels it. A timer that fires
 *   steps the driver with its event at the clock's `now`; a timer that was replaced, cancelled or
 *   belongs to a halted driver does nothing.
 *   5. observer    after every effect of the step has run.
 *
 * `persistLog` means one thing for every shell: the entries from `fromIndex` on replace the durable
 * log's tail; the entries before `fromIndex` stay as they are.
 */
import {
  roleOf,
  startElection,
  stepElection,
  type ElectionEffect,
  type ElectionEvent,
  type ElectionInput,
  type ElectionSnapshot,
  type ElectionStep,
  type Role,
  type TimerId,
} from './election.ts';
import type { LogEntry, Message, NodeId } from './messages.ts';

/** The shell's monotonic clock, ms. */
export interface Clock {
  now(): number;
}

/** Why a scheduled timer is cancelled: the machine disarmed it, re-armed it, it was fired by hand, or the driver halted. */
export type CancelReason = 'disarmed' | 'replaced' | 'fired' | 'halted';

/**
 * Timers: schedule `fire` after `delayMs`, and cancel what was scheduled. The handle is the shell's
 * (a setTimeout handle, a queue token); the driver only stores it and hands it back.
 */
export interface Timers<H = unknown> {
  start(id: TimerId, delayMs: number, fire: () => void): H;
  cancel(handle: H, id: TimerId, reason: CancelReason): void;
}

/** Send the step's messages (the election's datagrams). */
export interface Send {
  send(messages: readonly Message[]): void;
}

/** Persist: durable before returning. */
export interface Persist {
  persistHardState(term: number, votedFor: NodeId | null): void;
  /** The entries from `fromIndex` (1-based) on replace the durable log's tail. */
  persistLog(fromIndex: number, entries: readonly LogEntry[]): void;
}

/** Lifecycle: what the rest of the shell does about the election's decisions. Every method optional. */
export interface Lifecycle {
  stopServer?(epoch: number, reason: string): void;
  startServer?(epoch: number): void;
  commit?(fromIndex: number, entries: readonly LogEntry[]): void;
  leaderChanged?(leader: NodeId | null, term: number): void;
  proposalRejected?(reason: string, leader: NodeId | null): void;
  trace?(text: string): void;
}

/** Observer: called around each step, for metrics, logs and checkers. */
export interface StepObserver {
  /** After the snapshot changed, before any effect ran. */
  stepped?(before: ElectionSnapshot, after: ElectionSnapshot, event: ElectionEvent): void;
  /** After every effect of the step ran. */
  settled?(before: ElectionSnapshot, after: ElectionSnapshot, event: ElectionEvent): void;
}

export interface DriverPorts<H = unknown> {
  readonly clock: Clock;
  readonly timers: Timers<H>;
  readonly send: Send;
  readonly persist: Persist;
  readonly lifecycle?: Lifecycle;
  readonly observer?: StepObserver;
  /** How the statechart is stepped; default stepElection. Tests pass a checking one. */
  readonly step?: (snapshot: ElectionSnapshot, event: ElectionEvent) => ElectionStep;
}

/** An armed timer as the driver's table holds it. */
export interface ArmedTimer<H = unknown> {
  readonly id: TimerId;
  /** When it falls due on the driver's clock. */
  readonly due: number;
  readonly event: ElectionEvent;
  readonly handle: H;
}

export class ElectionDriver<H = unknown> {
  private readonly ports: DriverPorts<H>;
  private snap: ElectionSnapshot;
  private readonly table = new Map<TimerId, ArmedTimer<H>>();
  private halted = false;

  /** start builds the initial snapshot from `input` (its `now` is ignored: the clock's is used) and runs its effects. */
  constructor(input: Omit<ElectionInput, 'now'>, ports: DriverPorts<H>) {
    this.ports = ports;
    const first = startElection({ ...input, now: ports.clock.now() });
    this.snap = first.snapshot;
    this.run(first.effects);
  }

  get snapshot(): ElectionSnapshot {
    return this.snap;
  }

  role(): Role {
    return roleOf(this.snap);
  }

  /** step feeds one event and runs its effects, in the order above, before it returns. */
  step(event: ElectionEvent): void {
    if (this.halted) return;
    const before = this.snap;
    const next = (this.ports.step ?? stepElection)(before, event);
    this.snap = next.snapshot;
    this.ports.observer?.stepped?.(before, next.snapshot, event);
    this.run(next.effects);
    this.ports.observer?.settled?.(before, next.snapshot, event);
  }

  /** armed lists the pending timers. */
  armed(): readonly ArmedTimer<H>[] {
    return [...this.table.values()];
  }

  /** fire runs armed timer `id` now, as if it fell due; false if none is armed. */
  fire(id: TimerId): boolean {
    const t = this.table.get(id);
    if (!t || this.halted) return false;
    this.ports.timers.cancel(t.handle, id, 'fired');
    this.table.delete(id);
    this.step({ ...t.event, now: this.ports.clock.now() } as ElectionEvent);
    return true;
  }

  /** halt is power loss: every timer is cancelled and nothing steps any more. */
  halt(): void {
    this.halted = true;
    this.cancelTimers();
  }

  /** cancelTimers cancels every pending timer (a shutting-down shell); events still step. */
  cancelTimers(): void {
    for (const t of this.table.values()) this.ports.timers.cancel(t.handle, t.id, 'halted');
    this.table.clear();
  }

  private arm(id: TimerId, delayMs: number, event: ElectionEvent): void {
    const old = this.table.get(id);
    if (old) this.ports.timers.cancel(old.handle, id, 'replaced');
    const due = this.ports.clock.now() + delayMs;
    let entry: ArmedTimer<H> | null = null;
    const handle = this.ports.timers.start(id, delayMs, () => {
      // Only the timer the table still holds fires: a replaced or cancelled one does nothing.
      if (this.halted || entry === null || this.table.get(id) !== entry) return;
      this.table.delete(id);
      this.step({ ...event, now: this.ports.clock.now() } as ElectionEvent);
    });
    entry = { id, due, event, handle };
    this.table.set(id, entry);
  }

  private disarm(id: TimerId): void {
    const t = this.table.get(id);
    if (!t) return;
    this.ports.timers.cancel(t.handle, id, 'disarmed');
    this.table.delete(id);
  }

  private run(effects: readonly ElectionEffect[]): void {
    const p = this.ports;
    const l = p.lifecycle;
    for (const e of effects) {
      switch (e.kind) {
        case 'persistHardState':
          p.persist.persistHardState(e.term, e.votedFor);
          break;
        case 'persistLog':
          p.persist.persistLog(e.fromIndex, e.entries);
          break;
        case 'stopServer':
          l?.stopServer?.(e.epoch, e.reason);
          break;
        case 'send':
          p.send.send(e.messages);
          break;
        case 'startServer':
          l?.startServer?.(e.epoch);
          break;
        case 'commit':
          l?.commit?.(e.fromIndex, e.entries);
          break;
        case 'leaderChanged':
          l?.leaderChanged?.(e.leader, e.term);
          break;
        case 'proposalRejected':
          l?.proposalRejected?.(e.reason, e.leader);
          break;
        case 'trace':
          l?.trace?.(e.text);
          break;
        case 'armTimer':
          this.arm(e.id, e.delayMs, e.event);
          break;
        case 'disarmTimer':
          this.disarm(e.id);
          break;
      }
    }
  }
}
