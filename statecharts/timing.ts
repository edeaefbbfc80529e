/**
 * Election timing: the numbers that trade failover speed against false failovers.
 *
 * Three named profiles share one shape. `fleet` is tuned for robots on Wi-Fi (docs/timing.md has the
 * derivation); `lab` and `test` are derived from it and override only what changes, the way
 * memberlist derives its WAN and local configs from the LAN one. `validateTiming` checks the
 * cross-field invariants; it is pure and returns the problems instead of throwing, so every caller
 * can report all of them at once.
 */

export interface ElectionTiming {
  /** Leader → voter heartbeat interval, ms. Also the leader's CheckQuorum granularity. */
  readonly heartbeatMs: number;
  /**
   * Leader → learner heartbeat interval, ms: a multiple of heartbeatMs. Learners do not vote, so they
   * can hear the leader less often; this keeps a 200-robot site's traffic linear in voters, not members.
   */
  readonly learnerHeartbeatMs: number;
  /**
   * How often a follower acknowledges a plain heartbeat, ms. A follower answers every Append that
   * carries entries, moves what it holds, comes from a new leader or does not match its log; an
   * Append that changes nothing it answers only when its last answer to this leader is at least
   * this old (less half a heartbeat, for arrival jitter). Between heartbeatMs (answer every one)
   * and electionTimeoutMinMs / 5. Fewer answers mean fewer datagrams for the leader to handle, and
   * an older lease echo: a burst that starts just before an answer was due leaves the leader's
   * freshest echo up to this much older, so leaderLeaseMs carries that much more margin.
   */
  readonly ackIntervalMs: number;
  /**
   * Lower bound of the randomized follower election timeout, ms. It is also the stickiness window
   * (a voter refuses (pre)votes while it heard a leader within it) and the leader's lease (CheckQuorum).
   * It must exceed the longest loss burst the site should ride out plus a few heartbeats.
   */
  readonly electionTimeoutMinMs: number;
  /** Upper bound (exclusive) of the randomized follower election timeout, ms. */
  readonly electionTimeoutMaxMs: number;
  /**
   * The leader's lease, ms (CheckQuorum): it steps down when fewer than a majority of voters echoed
   * an Append it sent within this time. At least electionTimeoutMinMs. Longer than the stickiness
   * window, so that a leader whose only follower sits behind a loss burst does not step down when
   * the burst ends, one heartbeat before that follower's next ack arrives. A new leader's fence
   * delay grows by the difference, so epochs still never overlap (docs/protocol.md §5).
   */
  readonly leaderLeaseMs: number;
  /**
   * Lower bound of the election timeout right after boot, ms (same random spread as the normal one).
   * A robot that boots listens this long for a leader's heartbeats before it campaigns. It can be
   * short: if a leader is live, its voters refuse the PreVote, so a booting robot cannot depose it,
   * and a whole site that powers on together elects in well under a second.
   */
  readonly bootElectionTimeoutMs: number;
  /**
   * Range of the randomized retry timeout of a pre-candidate or candidate, ms. It can be short: a
   * campaign only starts after the stickiness window passed on a majority, so it cannot depose a live leader.
   */
  readonly campaignRetryMinMs: number;
  readonly campaignRetryMaxMs: number;
  /**
   * How much fitness (0..1) shortens the random part of the election timeout: the random part is
   * scaled by (1 - fitnessBias × fitness). 0 disables the bias. It never goes below electionTimeoutMinMs,
   * so it cannot weaken stickiness or safety.
   */
  readonly fitnessBias: number;
  /**
   * Bound on how late a timer may fire (event-loop lag, scheduler delay), ms. Part of the fencing delay.
   */
  readonly timerSlackMs: number;
  /** How long a leadership transfer may take before the leader gives up and serves again, ms. */
  readonly transferTimeoutMs: number;
  /** Budget for log entries in one Append, bytes of entry data, so a datagram stays ≤ 1200 bytes. */
  readonly maxAppendBytes: number;
  /** Largest single entry a leader accepts, bytes. At most maxAppendBytes. */
  readonly maxEntryBytes: number;
}

/**
 * fleetTiming is the default for robots on Wi-Fi (docs/timing.md):
 * - heartbeat 150 ms, answered every 300 ms: about 43 datagrams/s at a leader with 4 other voters
 *   and a learner, which sets an idle robot's CPU and airtime;
 * - election timeout 1.8–2.1 s: rides out 1.5 s loss bursts plus two lost heartbeats, and still
 *   elects a new leader in about 1.9 s (p50) after the old one loses power. The heartbeat does not
 *   set failover time: the election timeout does.
 */
export const fleetTiming: ElectionTiming = {
  heartbeatMs: 150,
  learnerHeartbeatMs: 600, // learners only follow; 4× fewer datagrams
  ackIntervalMs: 300, // every other heartbeat: halves what the leader receives
  electionTimeoutMinMs: 1800, // 1.5 s burst + 2 heartbeats of margin
  electionTimeoutMaxMs: 2100, // a narrow spread keeps p99 low; fitness and short retries break ties
  bootElectionTimeoutMs: 500, // 3 heartbeats: a live leader is heard first
  leaderLeaseMs: 2500, // 1.5 s burst + a stale echo (300 ms) + 4.7 heartbeats: a leader rides out a burst even with one follower left
  campaignRetryMinMs: 150, // > 2 RTT on Wi-Fi with headroom
  campaignRetryMaxMs: 400,
  fitnessBias: 0.5,
  timerSlackMs: 100, // Node event-loop lag on a busy robot core
  transferTimeoutMs: 1800,
  maxAppendBytes: 800, // header + 800 B of entries stays under 1200 B
  maxEntryBytes: 800,
};

/** labTiming: the fleet ratios at about half the time scale, for demos on one machine. */
export const labTiming: ElectionTiming = {
  ...fleetTiming,
  heartbeatMs: 50,
  learnerHeartbeatMs: 250,
  ackIntervalMs: 50, // every heartbeat: the lab measures recovery, not idle cost
  electionTimeoutMinMs: 900,
  electionTimeoutMaxMs: 1100,
  bootElectionTimeoutMs: 250,
  leaderLeaseMs: 1100,
  campaignRetryMinMs: 100,
  campaignRetryMaxMs: 250,
  timerSlackMs: 100,
  transferTimeoutMs: 900,
};

/** testTiming: fast timers for unit, scenario and property tests in the simulator. */
export const testTiming: ElectionTiming = {
  ...fleetTiming,
  heartbeatMs: 10,
  learnerHeartbeatMs: 50,
  ackIntervalMs: 20, // every other heartbeat, as in the fleet profile
  electionTimeoutMinMs: 100,
  electionTimeoutMaxMs: 150,
  bootElectionTimeoutMs: 30,
  leaderLeaseMs: 100,
  campaignRetryMinMs: 15,
  campaignRetryMaxMs: 40,
  timerSlackMs: 5,
  transferTimeoutMs: 100,
};

export const TIMING_PROFILES = { fleet: fleetTiming, lab: labTiming, test: testTiming } as const;
export type TimingProfileName = keyof typeof TIMING_PROFILES;

/** The minimum number of heartbeats per stickiness window (etcd suggests 10; below 5 loss alone deposes leaders). */
export const MIN_HEARTBEATS_PER_ELECTION_TIMEOUT = 5;

/**
 * fenceDelayMs is how long a new leader waits after winning before it starts its server. The new
 * leader's voters stopped hearing the old one at least electionTimeoutMinMs before it won; the old
 * leader's lease outlives that moment by at most leaderLeaseMs, and it notices within heartbeatMs +
 * timerSlackMs and stops its server. Waiting the difference keeps the two epochs apart
 * (docs/protocol.md §5).
 */
export function fenceDelayMs(t: ElectionTiming): number {
  return t.leaderLeaseMs - t.electionTimeoutMinMs + t.heartbeatMs + t.timerSlackMs;
}

/** validateTiming returns every violated invariant as a sentence naming the fields; [] when valid. */
export function validateTiming(t: ElectionTiming): string[] {
  const problems: string[] = [];
  const positive: (keyof ElectionTiming)[] = [
    'heartbeatMs',
    'learnerHeartbeatMs',
    'ackIntervalMs',
    'electionTimeoutMinMs',
    'electionTimeoutMaxMs',
    'bootElectionTimeoutMs',
    'leaderLeaseMs',
    'campaignRetryMinMs',
    'campaignRetryMaxMs',
    'transferTimeoutMs',
    'maxAppendBytes',
    'maxEntryBytes',
  ];
  for (const k of positive) {
    const v = t[k];
    if (!Number.isFinite(v) || v <= 0) problems.push(`${k} must be a positive number (got ${v})`);
  }
  if (!(t.timerSlackMs >= 0)) problems.push(`timerSlackMs must be ≥ 0 (got ${t.timerSlackMs})`);
  if (t.electionTimeoutMinMs < t.heartbeatMs * MIN_HEARTBEATS_PER_ELECTION_TIMEOUT) {
    problems.push(
      `electionTimeoutMinMs (${t.electionTimeoutMinMs}) must be at least ${MIN_HEARTBEATS_PER_ELECTION_TIMEOUT} × heartbeatMs (${t.heartbeatMs}): ` +
        `raise electionTimeoutMinMs or lower heartbeatMs`,
    );
  }
  if (t.electionTimeoutMaxMs <= t.electionTimeoutMinMs) {
    problems.push(
      `electionTimeoutMaxMs (${t.electionTimeoutMaxMs}) must be greater than electionTimeoutMinMs (${t.electionTimeoutMinMs})`,
    );
  }
  if (t.bootElectionTimeoutMs < 2 * t.heartbeatMs || t.bootElectionTimeoutMs > t.electionTimeoutMinMs) {
    problems.push(
      `bootElectionTimeoutMs (${t.bootElectionTimeoutMs}) must be between 2 × heartbeatMs (${2 * t.heartbeatMs}) and electionTimeoutMinMs (${t.electionTimeoutMinMs})`,
    );
  }
  if (t.leaderLeaseMs < t.electionTimeoutMinMs || t.leaderLeaseMs > 2 * t.electionTimeoutMinMs) {
    problems.push(
      `leaderLeaseMs (${t.leaderLeaseMs}) must be between electionTimeoutMinMs (${t.electionTimeoutMinMs}) and twice it: ` +
        `shorter cannot fence, longer keeps a cut-off leader serving too long`,
    );
  }
  if (t.campaignRetryMaxMs < t.campaignRetryMinMs) {
    problems.push(
      `campaignRetryMaxMs (${t.campaignRetryMaxMs}) must be ≥ campaignRetryMinMs (${t.campaignRetryMinMs})`,
    );
  }
  if (t.learnerHeartbeatMs < t.heartbeatMs || t.learnerHeartbeatMs % t.heartbeatMs !== 0) {
    problems.push(
      `learnerHeartbeatMs (${t.learnerHeartbeatMs}) must be a whole multiple of heartbeatMs (${t.heartbeatMs})`,
    );
  }
  if (t.learnerHeartbeatMs >= t.electionTimeoutMinMs) {
    problems.push(
      `learnerHeartbeatMs (${t.learnerHeartbeatMs}) must be below electionTimeoutMinMs (${t.electionTimeoutMinMs})`,
    );
  }
  if (
    t.ackIntervalMs < t.heartbeatMs ||
    t.ackIntervalMs * MIN_HEARTBEATS_PER_ELECTION_TIMEOUT > t.electionTimeoutMinMs
  ) {
    problems.push(
      `ackIntervalMs (${t.ackIntervalMs}) must be between heartbeatMs (${t.heartbeatMs}) and electionTimeoutMinMs / ${MIN_HEARTBEATS_PER_ELECTION_TIMEOUT} (${t.electionTimeoutMinMs / MIN_HEARTBEATS_PER_ELECTION_TIMEOUT}): ` +
        `a leader must hear each follower several times per lease`,
    );
  }
  if (t.heartbeatMs + t.timerSlackMs >= t.electionTimeoutMinMs) {
    problems.push(`heartbeatMs + timerSlackMs must be below electionTimeoutMinMs, or leases cannot fence`);
  }
  if (!(t.fitnessBias >= 0 && t.fitnessBias < 1)) {
    problems.push(`fitnessBias must be in [0, 1) (got ${t.fitnessBias})`);
  }
  if (t.maxEntryBytes > t.maxAppendBytes) {
    problems.push(`maxEntryBytes (${t.maxEntryBytes}) must not exceed maxAppendBytes (${t.maxAppendBytes})`);
  }
  if (t.maxAppendBytes > 1000) {
    problems.push(
      `maxAppendBytes (${t.maxAppendBytes}) must be ≤ 1000 so that an Append fits a 1200-byte datagram`,
    );
  }
  return problems;
}
