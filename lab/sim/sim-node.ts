/**
 * SimNode is one simulated robot: the election core behind the shared driver
 * (statecharts/driver.ts) plus an in-memory twin of the agent's durable state directory, which is
 * the driver's Persist port. Its host (the simulator or the scenario harness) owns the network, the
 * clock and the timers and gives the driver the other ports at each boot.
 */
import type {
  DurableState,
  ElectionEvent,
  ElectionSnapshot,
  ElectionStep,
  Role,
} from '../../statecharts/election.ts';
import { durableOf } from '../../statecharts/election.ts';
import { ElectionDriver, type DriverPorts, type Persist } from '../../statecharts/driver.ts';
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';
import { seedFrom } from '../../statecharts/rng.ts';
import type { ElectionTiming } from '../../statecharts/timing.ts';

export interface SimNodeConfig {
  readonly id: NodeId;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly witnesses?: readonly NodeId[];
  readonly timing: ElectionTiming;
  readonly seed: number;
  readonly fitness: number;
  /** The datastore replica position the robot reports at every boot (setReplica); none by default. */
  readonly replica?: { readonly epoch: number; readonly revision: number };
  /** How the statechart is stepped; default stepElection. */
  readonly step?: (snapshot: ElectionSnapshot, event: ElectionEvent) => ElectionStep;
}

/** What the host gives the driver: everything but persistence, which is the node's own twin. */
export type HostPorts = Omit<DriverPorts, 'persist' | 'step'>;

export class SimNode implements Persist {
  readonly id: NodeId;
  private readonly config: SimNodeConfig;
  /** What survives power loss: the twin of the agent's state directory. */
  durable: DurableState = { term: 0, votedFor: null, log: [] };
  driver: ElectionDriver | null = null;
  alive = false;
  paused = false;
  /** How many times this robot has booted; salts its PRNG so a reboot draws new timeouts. */
  boots = 0;
  /**
   * A deliberately wrong shell's clock offset: added to every `now` the statechart sees. Only the
   * campaign's test of a shell that reads the wall clock sets it.
   */
  nowShift: (() => number) | null = null;

  constructor(config: SimNodeConfig) {
    this.id = config.id;
    this.config = config;
  }

  /** boot starts the agent from durable state (first power-on or restart after a kill). */
  boot(host: HostPorts): void {
    this.alive = true;
    this.paused = false;
    this.boots++;
    const c = this.config;
    const shifted = (now: number) => (this.nowShift ? now + this.nowShift() : now);
    const observer = host.observer;
    this.driver = new ElectionDriver(
      {
        id: c.id,
        voters: c.voters,
        learners: c.learners,
        witnesses: c.witnesses ?? [],
        timing: c.timing,
        seed: seedFrom(c.seed, `${c.id}#${this.boots}`),
        fitness: c.fitness,
        durable: this.durable,
      },
      {
        ...host,
        clock: { now: () => shifted(host.clock.now()) },
        persist: this,
        ...(c.step ? { step: c.step } : {}),
        observer: {
          stepped: observer?.stepped?.bind(observer),
          settled: (before, after, event) => {
            this.checkDurable();
            observer?.settled?.(before, after, event);
          },
        },
      },
    );
    if (c.replica && (c.replica.epoch > 0 || c.replica.revision > 0))
      this.step({ type: 'setReplica', ...c.replica, now: host.clock.now() });
    this.checkDurable();
  }

  /** kill is power loss: volatile state and timers are gone, durable state stays. */
  kill(): void {
    this.alive = false;
    this.paused = false;
    this.driver?.halt();
  }

  /** step feeds one event to the running robot's driver. */
  step(event: ElectionEvent): void {
    this.driver!.step(
      this.nowShift ? ({ ...event, now: event.now + this.nowShift() } as ElectionEvent) : event,
    );
  }

  get snapshot(): ElectionSnapshot {
    return this.driver!.snapshot;
  }

  get role(): Role {
    return this.driver!.role();
  }

  get term(): number {
    return this.driver!.snapshot.context.term;
  }

  persistHardState(term: number, votedFor: NodeId | null): void {
    this.durable = { ...this.durable, term, votedFor };
  }

  persistLog(fromIndex: number, entries: readonly LogEntry[]): void {
    this.durable = { ...this.durable, log: this.durable.log.slice(0, fromIndex - 1).concat(entries) };
  }

  /** The statechart's view and the durable twin must agree after every step. */
  private checkDurable(): void {
    const d = durableOf(this.driver!.snapshot);
    if (
      d.term !== this.durable.term ||
      d.votedFor !== this.durable.votedFor ||
      d.log.length !== this.durable.log.length
    ) {
      throw new Error(
        `${this.id}: durable state diverged from the statechart (a persistence effect is missing)`,
      );
    }
  }
}
