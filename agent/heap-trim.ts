/**
 * The agent's periodic memory-reducing garbage collection.
 *
 * An idle agent allocates little, and all of it dies young: its old generation never fills, so V8
 * never runs a full collection of its own. Code and objects used once (at start-up, in an election,
 * in a leader's apply or snapshot push) then stay resident for the agent's life, and V8's memory
 * reducer, which starts only after a full collection, never runs. A regular full collection does not
 * help either: what an idle agent keeps is mostly pages V8 holds but no longer needs, and only the
 * memory-reducing ("last resort") collection gives them back and flushes the bytecode of functions
 * that have not run since.
 *
 * With `--expose-gc`, which the systemd unit sets, the agent asks for one such collection every
 * HEAP_TRIM_EVERY_MS. Without the flag (tests, the lab, `edgectl agent run` from the sources)
 * there is no `gc` and this does nothing. docs/benchmarks/agent.md has what it saves and costs.
 */
import { monotonicMs } from './clock.ts';

/** V8's `gc` with options, as `--expose-gc` installs it. */
type ExposedGc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/**
 * An idle agent's resident memory creeps up by a fraction of a MB a minute between collections, and
 * a leader's reconcile or snapshot push leaves more behind: once a minute keeps the creep under a
 * MB, and each collection blocks for a few tens of milliseconds, far below any election timeout.
 * Once every 5 minutes let a leader grow by about 2 MB (docs/benchmarks/agent.md).
 */
export const HEAP_TRIM_EVERY_MS = 60_000;

export interface HeapTrim {
  /** How many collections ran, and the milliseconds they blocked the event loop in all. */
  stats(): { readonly runs: number; readonly blockedMs: number };
  stop(): void;
}

/**
 * startHeapTrim runs `gc` (default: the global one `--expose-gc` installs) every `everyMs`, or
 * returns null when there is none. The timer does not keep the process alive.
 */
export function startHeapTrim(
  o: { readonly everyMs?: number; readonly gc?: unknown; readonly now?: () => number } = {},
): HeapTrim | null {
  const gc = 'gc' in o ? o.gc : (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') return null;
  const now = o.now ?? monotonicMs;
  let runs = 0;
  let blockedMs = 0;
  const timer = setInterval(() => {
    const started = now();
    (gc as ExposedGc)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    blockedMs += now() - started;
    runs++;
  }, o.everyMs ?? HEAP_TRIM_EVERY_MS);
  timer.unref();
  return {
    stats: () => ({ runs, blockedMs }),
    stop: () => clearInterval(timer),
  };
}
