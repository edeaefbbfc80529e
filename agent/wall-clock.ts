/**
 * The agent's one reader of the wall clock. Timeouts, deadlines, leases and membership timers use the
 * monotonic clock (agent/clock.ts) the shell passes in, so a robot whose clock jumps (NTP after a
 * power cycle, an RTC with a flat battery) never times out early or late. The wall clock is kept for
 * timestamps that other machines compare: a Node's heartbeat time on the API server, the creation
 * time of a shipped snapshot, and the time on each log line. test/campaign/campaign.test.ts checks
 * that no other file in agent/ or statecharts/ reads it.
 */

/** Milliseconds since the Unix epoch, for timestamps shared with other machines; never for timeouts. */
export function wallClockMs(): number {
  return Date.now();
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * An RFC 3339 UTC timestamp (as Kubernetes writes them) for a wall-clock time in milliseconds:
 * what `Date.prototype.toISOString` returns. Built from the UTC fields instead, because V8's
 * toISOString looks up the host's time zone and its display names in ICU's data on first use, which
 * leaves half a megabyte of resident pages in an agent that only ever writes UTC (every log line
 * carries one; docs/benchmarks/agent.md). Years outside 0000–9999 take toISOString's extended form.
 */
export function isoTime(wallMs: number): string {
  const d = new Date(wallMs);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return d.toISOString();
  return (
    `${pad(year, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}` +
    `.${pad(d.getUTCMilliseconds(), 3)}Z`
  );
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * An HTTP date (RFC 9110 IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`) for a wall-clock time: what
 * `Date.prototype.toUTCString` returns, built from the UTC fields for the reason isoTime gives.
 * The status server sets its Date header with it; Node's own would call toUTCString.
 */
export function httpDate(wallMs: number): string {
  const d = new Date(wallMs);
  const year = d.getUTCFullYear();
  if (!(year >= 0 && year <= 9999)) return d.toUTCString();
  return (
    `${DAYS[d.getUTCDay()]}, ${pad(d.getUTCDate(), 2)} ${MONTHS[d.getUTCMonth()]} ${pad(year, 4)} ` +
    `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)} GMT`
  );
}

/** pino's `timestamp` option: the `"time"` field of each log line, as isoTime writes it. */
export function logTimestamp(): string {
  return `,"time":"${isoTime(wallClockMs())}"`;
}
