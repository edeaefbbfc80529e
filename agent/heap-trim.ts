/**
 * The agent's memory-reducing garbage collection, when its memory has grown.
 *
 * An idle agent allocates little, and all of it dies young: its old generation never fills, so V8
 * never runs a full collection of its own. Code and objects used once (at start-up, in an election,
 * in a leader's apply or snapshot push) then stay resident for the agent's life, and V8's memory
 * reducer, which starts only after a full collection, never runs. A regular full collection does not
 * help either: what an idle agent keeps is mostly pages V8 holds but no longer needs, and only the
 * memory-reducing ("last resort") collection gives them back and flushes the bytecode of functions
 * that have not run since.
 *
 * That collection runs several full collections in a row, tens of milliseconds of CPU. So the
 * agent checks its resident memory every HEAP_TRIM_CHECK_MS, which costs one read of its own
 * counters, and collects only when it has grown by HEAP_TRIM_GROWTH_BYTES since the last
 * collection: at start-up, after a leader's burst of work, rarely on an idle robot.
 *
 * `gc` exists under `--expose-gc`, which the systemd unit sets. Without the flag (tests, the lab's
 * sources, `edgectl agent run`) there is none and this does nothing. docs/benchmarks/agent.md has
 * what it saves and costs.
 */
import { monotonicMs } from './clock.ts';

/** V8's `gc` with options, as `--expose-gc` installs it. */
type ExposedGc = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

/** How often the agent compares its resident memory with what it was after the last collection. */
export const HEAP_TRIM_CHECK_MS = 10_000;
/**
 * How much it may grow before the next collection: a little above what one reconcile or snapshot
 * push leaves, so that an idle robot collects seldom, and far below the agent's memory goal's margin.
 */
export const HEAP_TRIM_GROWTH_BYTES = 1024 * 1024;

export interface HeapTrim {
  /** How many collections ran, and the milliseconds they blocked the event loop in all. */
  stats(): { readonly runs: number; readonly blockedMs: number };
  stop(): void;
}

export interface HeapTrimOptions {
  readonly checkEveryMs?: number;
  readonly growthBytes?: number;
  /** Default: the global one `--expose-gc` installs. */
  readonly gc?: unknown;
  /** The process's resident memory in bytes (default process.memoryUsage.rss). */
  readonly rss?: () => number;
  readonly now?: () => number;
}

/**
 * startHeapTrim checks every `checkEveryMs` and runs `gc` when the resident memory has grown by
 * `growthBytes` since the last collection (the first check always collects), or returns null when
 * there is no `gc`. The timer does not keep the process alive.
 */
export function startHeapTrim(o: HeapTrimOptions = {}): HeapTrim | null {
  const gc = 'gc' in o ? o.gc : (globalThis as { gc?: unknown }).gc;
  if (typeof gc !== 'function') return null;
  const rss = o.rss ?? (() => process.memoryUsage.rss());
  const now = o.now ?? monotonicMs;
  const growth = o.growthBytes ?? HEAP_TRIM_GROWTH_BYTES;
  let after: number | null = null;
  let runs = 0;
  let blockedMs = 0;
  const timer = setInterval(() => {
    if (after !== null && rss() < after + growth) return;
    const started = now();
    (gc as ExposedGc)({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    blockedMs += now() - started;
    runs++;
    after = rss();
  }, o.checkEveryMs ?? HEAP_TRIM_CHECK_MS);
  timer.unref();
  return {
    stats: () => ({ runs, blockedMs }),
    stop: () => clearInterval(timer),
  };
}
