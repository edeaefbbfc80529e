/**
 * The agent's one reader of the wall clock. Timeouts, deadlines, leases and membership timers use the
 * monotonic clock (performance.now) the shell passes in, so a robot whose clock jumps (NTP after a
 * power cycle, an RTC with a flat battery) never times out early or late. The wall clock is kept for
 * timestamps that other machines compare: a Node's heartbeat time on the API server, and the
 * creation time of a shipped snapshot. test/campaign/campaign.test.ts checks that no other file in
 * agent/ or statecharts/ reads it.
 */

/** Milliseconds since the Unix epoch, for timestamps shared with other machines; never for timeouts. */
export function wallClockMs(): number {
  return Date.now();
}

/** An RFC 3339 UTC timestamp (as Kubernetes writes them) for a wall-clock time in milliseconds. */
export function isoTime(wallMs: number): string {
  return new Date(wallMs).toISOString();
}
