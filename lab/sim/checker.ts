/**
 * SafetyChecker watches a run and records every breach of edgectl's safety promises
 * (docs/reliability.md). The simulator feeds it; the netns lab feeds the same checks from agents' logs.
 *
 * - two-leaders: two robots led the same term (Raft's Election Safety).
 * - overlapping-epochs: a robot started (or resumed) a server while another robot's server ran.
 * - lost-commit: a new leader's log lacks an entry that was committed before (Leader Completeness).
 * - divergent-commit: two robots committed different entries at one index (State Machine Safety).
 * - invariant: the statechart itself reported an impossible input.
 */
import type { LogEntry, NodeId } from '../../statecharts/messages.ts';

export type ViolationKind =
  'two-leaders' | 'overlapping-epochs' | 'lost-commit' | 'divergent-commit' | 'invariant';

export interface Violation {
  readonly kind: ViolationKind;
  readonly atMs: number;
  readonly detail: string;
}

const entryKey = (e: LogEntry): string => `${e.term}:${e.kind}:${e.data}`;

export class SafetyChecker {
  readonly violations: Violation[] = [];
  /** Robots whose server runs, with its epoch. */
  readonly serving = new Map<NodeId, number>();
  private readonly leaders = new Map<number, NodeId>();
  /** committed[i] is the key of the entry committed at index i + 1. */
  private readonly committedLog: string[] = [];
  /** commitTerms[i] is the lowest term in which index i + 1 was seen committed. */
  private readonly commitTerms: number[] = [];

  get committedCount(): number {
    return this.committedLog.length;
  }

  report(kind: ViolationKind, atMs: number, detail: string): void {
    this.violations.push({ kind, atMs, detail });
  }

  elected(id: NodeId, term: number, atMs: number, log: readonly LogEntry[]): void {
    const prior = this.leaders.get(term);
    if (prior !== undefined && prior !== id)
      this.report('two-leaders', atMs, `${prior} and ${id} both led term ${term}`);
    this.leaders.set(term, id);
    for (let i = 0; i < this.committedLog.length; i++) {
      // Leader Completeness binds leaders of later terms only; a stale leader (a robot frozen
      // mid-election, say) need not hold what was committed in its term or after.
      if (this.commitTerms[i]! >= term) continue;
      const e = log[i];
      if (!e || entryKey(e) !== this.committedLog[i]) {
        this.report(
          'lost-commit',
          atMs,
          `${id} leads term ${term} without committed entry ${i + 1} (${this.committedLog[i]})`,
        );
        break;
      }
    }
  }

  /** committed records entries a robot applied; `term` is that robot's term when it learned the commit. */
  committed(id: NodeId, fromIndex: number, entries: readonly LogEntry[], atMs: number, term: number): void {
    entries.forEach((e, k) => {
      const i = fromIndex - 1 + k;
      const key = entryKey(e);
      const known = this.committedLog[i];
      if (known === undefined) {
        if (i === this.committedLog.length) {
          this.committedLog.push(key);
          this.commitTerms.push(term);
        } else
          this.report(
            'invariant',
            atMs,
            `${id} committed index ${i + 1} before index ${this.committedLog.length + 1}`,
          );
      } else if (known === key) {
        this.commitTerms[i] = Math.min(this.commitTerms[i]!, term);
      } else {
        this.report('divergent-commit', atMs, `${id} committed ${key} at index ${i + 1}, others ${known}`);
      }
    });
  }

  serverStarted(
    id: NodeId,
    epoch: number,
    atMs: number,
    others: readonly { node: NodeId; epoch: number }[],
  ): void {
    for (const o of others) {
      this.report(
        'overlapping-epochs',
        atMs,
        `${id} started epoch ${epoch} while ${o.node} serves epoch ${o.epoch}`,
      );
    }
    this.serving.set(id, epoch);
  }

  serverStopped(id: NodeId, _epoch: number, _atMs: number): void {
    this.serving.delete(id);
  }

  /** A robot lost power: its server died with it. */
  serverKilled(id: NodeId, _atMs: number): void {
    this.serving.delete(id);
  }

  /** A frozen robot resumed and caught up; if its server still runs beside another one, epochs overlap. */
  resumed(id: NodeId, atMs: number, others: readonly { node: NodeId; epoch: number }[]): void {
    const epoch = this.serving.get(id);
    if (epoch === undefined) return;
    for (const o of others) {
      this.report(
        'overlapping-epochs',
        atMs,
        `${id} resumed serving epoch ${epoch} while ${o.node} serves epoch ${o.epoch}`,
      );
    }
  }
}
