/**
 * The agent's monotonic clock: milliseconds on CLOCK_MONOTONIC since this module loaded. Timers,
 * leases, deadlines and RTTs all read it (or a `now` a test passes in), so every time the agent
 * compares comes from one clock, and a wall-clock jump (agent/wall-clock.ts) moves none of them.
 *
 * Not `performance.now()`, which reads the same clock: the first read of the `performance` global
 * loads Node's perf_hooks, nine modules an idle robot carries for nothing (docs/benchmarks/agent.md).
 * `process.hrtime` is part of every Node process.
 */
const origin = process.hrtime();

/** monotonicMs is milliseconds since the agent's clock started; it never goes backwards. */
export function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime(origin);
  return seconds * 1e3 + nanoseconds / 1e6;
}
