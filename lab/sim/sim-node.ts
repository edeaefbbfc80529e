/**
 * SimNode is one simulated robot: the real election statechart plus an in-memory twin of the
 * agent's durable state directory. It runs persistence effects itself (synchronously, as a robot's
 * fsync'd write completes before the agent sends anything) and hands every other effect to its host
 * (the simulator or the scenario harness), which owns the network, the clock and the timers.
 */
import {
  durableOf,
  roleOf,
  startElection,
  stepElection,
  type DurableState,
  type ElectionEffect,
  type ElectionEvent,
  type ElectionSnapshot,
  type ElectionStep,
  type Role,
} from '../../statecharts/election.ts';
import type { NodeId } from '../../statecharts/messages.ts';
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
  /** How the statechart is stepped; default stepElection. */
  readonly step?: (snapshot: ElectionSnapshot, event: ElectionEvent) => ElectionStep;
}

export class SimNode {
  readonly id: NodeId;
  private readonly config: SimNodeConfig;
  /** What survives power loss: the twin of the agent's state directory. */
  durable: DurableState = { term: 0, votedFor: null, log: [] };
  snapshot!: ElectionSnapshot;
  alive = false;
  paused = false;
  /** How many times this robot has booted; salts its PRNG so a reboot draws new timeouts. */
  boots = 0;

  constructor(config: SimNodeConfig) {
    this.id = config.id;
    this.config = config;
  }

  /** boot starts the agent from durable state (first power-on or restart after a kill). */
  boot(now: number): ElectionEffect[] {
    this.alive = true;
    this.paused = false;
    this.boots++;
    const c = this.config;
    const step = startElection({
      id: c.id,
      voters: c.voters,
      learners: c.learners,
      witnesses: c.witnesses ?? [],
      timing: c.timing,
      seed: seedFrom(c.seed, `${c.id}#${this.boots}`),
      fitness: c.fitness,
      durable: this.durable,
      now,
    });
    this.snapshot = step.snapshot;
    return this.persist(step.effects);
  }

  /** kill is power loss: volatile state is gone, durable state stays. */
  kill(): void {
    this.alive = false;
    this.paused = false;
  }

  handle(event: ElectionEvent): ElectionEffect[] {
    const step = (this.config.step ?? stepElection)(this.snapshot, event);
    this.snapshot = step.snapshot;
    return this.persist(step.effects);
  }

  get role(): Role {
    return roleOf(this.snapshot);
  }

  get term(): number {
    return this.snapshot.context.term;
  }

  private persist(effects: readonly ElectionEffect[]): ElectionEffect[] {
    const rest: ElectionEffect[] = [];
    for (const e of effects) {
      if (e.kind === 'persistHardState')
        this.durable = { ...this.durable, term: e.term, votedFor: e.votedFor };
      else if (e.kind === 'persistLog') {
        this.durable = { ...this.durable, log: this.durable.log.slice(0, e.fromIndex - 1).concat(e.entries) };
      } else rest.push(e);
    }
    // The statechart's view and the durable twin must agree after every step.
    const d = durableOf(this.snapshot);
    if (
      d.term !== this.durable.term ||
      d.votedFor !== this.durable.votedFor ||
      d.log.length !== this.durable.log.length
    ) {
      throw new Error(
        `${this.id}: durable state diverged from the statechart (a persistence effect is missing)`,
      );
    }
    return rest;
  }
}
