/**
 * The fault schedules of the failover benchmark, written once against FailoverSystem so every
 * system gets the same ones (docs/benchmarks/failover.md):
 *
 * - power loss of the leader, N rounds: power off, watch for a new leader, wait until the
 *   survivors are whole, power on, wait until all are whole, rest;
 * - Wi-Fi loss of the leader for a fixed time, N rounds: link down, watch, link up, wait, rest;
 * - random loss with periodic bursts on every bridge at once, after a control window without faults.
 *
 * While a fault lasts the host polls every reachable member every `pollMs` (the polled new-leader
 * time). Afterwards the judges read the members' own logs: they say exactly when a survivor started
 * an election and became leader, and how many leader changes a round really had.
 */
import type { NetFaults } from './net.ts';
import { sleep, waitSettled, type FailoverSystem, type RoleEvent, type SystemId } from './system.ts';

export type ScheduleId = 'power' | 'wifi';

export interface ScheduleOptions {
  /** Poll interval while watching for a new leader, ms. */
  readonly pollMs: number;
  /** Longest wait for a system to be whole again, ms. */
  readonly settleTimeoutMs: number;
  /** Pause after a system is whole again, before the next round, ms. */
  readonly restMs: number;
  readonly log: (line: string) => void;
}

/** RawRound is what a round recorded while it ran (host clock). */
export interface RawRound {
  readonly system: SystemId;
  readonly schedule: ScheduleId;
  readonly round: number;
  readonly victim: string;
  readonly termBefore: number;
  /** The fault, just before the signal or link down. */
  readonly t: number;
  /** Wi-Fi loss: how long the link was meant to be down (the schedule's length), ms. */
  readonly plannedOutageMs: number | null;
  /** Wi-Fi loss: how long the link was down, measured, ms. */
  readonly outageMs: number | null;
  /** The system whole again after the rest (the end of the round's window for the judge). */
  readonly end: number;
  /** First poll (answer time) that showed a survivor leading in a higher term, ms after t. */
  readonly polledNewLeaderMs: number | null;
  /** Set when the round did not settle in time (it then recovered, or the run stopped). */
  readonly error: string | null;
}

/** Round is a RawRound judged from the members' logs. */
export interface Round extends RawRound {
  /** First survivor to start an election (pre-candidate or candidate), ms after t. */
  readonly detectionMs: number | null;
  /** First survivor to become leader in a term above termBefore, ms after t. */
  readonly newLeaderMs: number | null;
  readonly newLeader: string | null;
  /** Leader changes in [t, end]: distinct terms above termBefore in which some member became leader. */
  readonly leaderChanges: number;
  /** Leader changes the fault calls for: 1 for a power loss and for a Wi-Fi loss longer than the election timeout, else 0. */
  readonly expectedChanges: 0 | 1;
  /** leaderChanges beyond expectedChanges. */
  readonly falseChanges: number;
}

async function watchNewLeader(
  sys: FailoverSystem,
  victim: string,
  termBefore: number,
  until: number,
  pollMs: number,
): Promise<number | null> {
  while (Date.now() < until) {
    const started = Date.now();
    const p = await sys.poll();
    if (p.views.some((v) => v.leader && v.member !== victim && v.term > termBefore)) return p.t;
    await sleep(Math.max(0, Math.min(pollMs - (Date.now() - started), until - Date.now())));
  }
  return null;
}

/** recover brings the victim back after a round that did not settle, then waits for the whole system. */
async function recover(sys: FailoverSystem, victim: string, o: ScheduleOptions, e: unknown): Promise<string> {
  const msg = (e as Error).message;
  o.log(`${sys.id}: ${msg}; bringing ${victim} back`);
  await sys.wifiOn(victim).catch(() => undefined);
  await sys.powerOn(victim).catch(() => undefined);
  await waitSettled(sys, [], 0, 2 * o.settleTimeoutMs);
  return msg;
}

/** What one round's fault did: when a new leader was first seen, and how long the outage really was. */
interface RoundOutcome {
  readonly seen: number | null;
  readonly outageMs: number | null;
}

/**
 * runRounds is the loop both schedules share: settle, take the leader as the victim, apply `fault`
 * to it (which returns once the victim is back and the system whole), recover by hand after an
 * error, rest, and record the round.
 */
async function runRounds(
  sys: FailoverSystem,
  rounds: number,
  o: ScheduleOptions,
  schedule: RawRound['schedule'],
  plannedOutageMs: number | null,
  fault: (victim: string, termBefore: number, t: number) => Promise<RoundOutcome>,
  describe: (r: RawRound) => string,
): Promise<RawRound[]> {
  const out: RawRound[] = [];
  let s = await waitSettled(sys, [], 0, o.settleTimeoutMs);
  for (let i = 1; i <= rounds; i++) {
    const victim = s.leader;
    const termBefore = s.term;
    const t = Date.now();
    let outcome: RoundOutcome = { seen: null, outageMs: plannedOutageMs };
    let error: string | null = null;
    try {
      outcome = await fault(victim, termBefore, t);
    } catch (e) {
      error = await recover(sys, victim, o, e);
    }
    await sleep(o.restMs);
    s = await waitSettled(sys, [], 0, o.settleTimeoutMs);
    const r: RawRound = {
      system: sys.id,
      schedule,
      round: i,
      victim,
      termBefore,
      t,
      plannedOutageMs,
      outageMs: outcome.outageMs,
      end: Date.now(),
      polledNewLeaderMs: outcome.seen === null ? null : outcome.seen - t,
      error,
    };
    out.push(r);
    o.log(
      `${sys.id} ${describe(r)} ${i}/${rounds}: new leader seen after ${r.polledNewLeaderMs ?? '-'} ms; now ${s.leader} (term ${s.term})`,
    );
  }
  return out;
}

/** powerLossRounds powers the leader off `rounds` times (see the module comment). */
export function powerLossRounds(
  sys: FailoverSystem,
  rounds: number,
  o: ScheduleOptions,
): Promise<RawRound[]> {
  return runRounds(
    sys,
    rounds,
    o,
    'power',
    null,
    async (victim, termBefore, t) => {
      await sys.powerOff(victim);
      const seen = await watchNewLeader(sys, victim, termBefore, t + o.settleTimeoutMs, o.pollMs);
      await waitSettled(sys, [victim], termBefore + 1, o.settleTimeoutMs);
      await sys.powerOn(victim);
      await waitSettled(sys, [], 0, o.settleTimeoutMs);
      return { seen, outageMs: null };
    },
    (r) => `power loss of ${r.victim}`,
  );
}

/** wifiRounds takes the leader off the Wi-Fi for `outageMs`, `rounds` times. */
export function wifiRounds(
  sys: FailoverSystem,
  outageMs: number,
  rounds: number,
  o: ScheduleOptions,
): Promise<RawRound[]> {
  return runRounds(
    sys,
    rounds,
    o,
    'wifi',
    outageMs,
    async (victim, termBefore, t) => {
      await sys.wifiOff(victim);
      const seen = await watchNewLeader(sys, victim, termBefore, t + outageMs, o.pollMs);
      await sleep(Math.max(0, t + outageMs - Date.now()));
      const outage = Date.now() - t;
      await sys.wifiOn(victim);
      await waitSettled(sys, [], 0, o.settleTimeoutMs);
      return { seen, outageMs: outage };
    },
    (r) => `Wi-Fi loss ${outageMs / 1000} s of ${r.victim} (off for ${r.outageMs ?? '-'} ms)`,
  );
}

const leaderTerms = (evs: readonly RoleEvent[], from: number, to: number, above: number): Set<number> =>
  new Set(
    evs.filter((e) => e.role === 'leader' && e.t >= from && e.t <= to && e.term > above).map((e) => e.term),
  );

/**
 * judgeRound reads a round off the members' logs (pure). `electionTimeoutMs` is the system's lower
 * bound: a Wi-Fi loss no longer than it calls for no leader change, so any change it causes is false.
 */
export function judgeRound(raw: RawRound, events: readonly RoleEvent[], electionTimeoutMs: number): Round {
  const survivors = events
    .filter((e) => e.member !== raw.victim && e.t >= raw.t && e.t <= raw.end)
    .sort((a, b) => a.t - b.t);
  const detect = survivors.find(
    (e) => (e.role === 'preCandidate' || e.role === 'candidate') && e.term >= raw.termBefore,
  );
  const elected = survivors.find((e) => e.role === 'leader' && e.term > raw.termBefore);
  const leaderChanges = leaderTerms(events, raw.t, raw.end, raw.termBefore).size;
  const expectedChanges: 0 | 1 =
    raw.schedule === 'power' || (raw.plannedOutageMs ?? 0) > electionTimeoutMs ? 1 : 0;
  return {
    ...raw,
    detectionMs: detect ? detect.t - raw.t : null,
    newLeaderMs: elected ? elected.t - raw.t : null,
    newLeader: elected?.member ?? null,
    leaderChanges,
    expectedChanges,
    falseChanges: Math.max(0, leaderChanges - expectedChanges),
  };
}

/** RawLoss is what the loss schedule recorded (host clock). */
export interface RawLoss {
  readonly rate: number;
  readonly burstMs: number;
  readonly burstEveryMs: number;
  /** The control window: every system whole, no fault at all. */
  readonly controlFrom: number;
  readonly controlTo: number;
  /** Loss on at t0, bursts at `bursts`, everything healed at t1, every system whole again at t2. */
  readonly t0: number;
  readonly t1: number;
  readonly t2: number;
  readonly bursts: readonly number[];
  readonly termBefore: Readonly<Partial<Record<SystemId, number>>>;
}

/** Loss is the loss schedule judged for one system from its members' logs. */
export interface Loss {
  readonly system: SystemId;
  readonly lossSeconds: number;
  readonly bursts: number;
  readonly controlSeconds: number;
  /** Leader changes in the control window (should be 0: the harness itself disturbs nothing). */
  readonly controlChanges: number;
  /** Leader changes from loss on until every system was whole again: all false. */
  readonly leaderChanges: number;
  /** Bursts followed by a leader change within burstMs + 5 s. */
  readonly burstsWithChange: number;
  /** Leader changes outside those windows: random loss alone. */
  readonly changesUnderLossAlone: number;
  /** Highest term minus the term before: elections started, won or not. */
  readonly termRise: number;
}

/** judgeLoss reads the loss schedule off one system's logs (pure). */
export function judgeLoss(system: SystemId, raw: RawLoss, events: readonly RoleEvent[]): Loss {
  const before = raw.termBefore[system] ?? 0;
  const control = leaderTerms(events, raw.controlFrom, raw.controlTo, -1);
  const leaders = events.filter(
    (e) => e.role === 'leader' && e.t >= raw.t0 && e.t <= raw.t2 && e.term > before,
  );
  const windowOf = (t: number) => raw.bursts.find((b) => t >= b && t <= b + raw.burstMs + 5000);
  const terms = new Set(leaders.map((e) => e.term));
  const inBurst = new Set(leaders.filter((e) => windowOf(e.t) !== undefined).map((e) => e.term));
  const burstsWithChange = raw.bursts.filter((b) =>
    leaders.some((e) => e.t >= b && e.t <= b + raw.burstMs + 5000),
  ).length;
  const maxTerm = Math.max(
    before,
    ...events.filter((e) => e.t >= raw.t0 && e.t <= raw.t2).map((e) => e.term),
  );
  return {
    system,
    lossSeconds: Math.round((raw.t1 - raw.t0) / 1000),
    bursts: raw.bursts.length,
    controlSeconds: Math.round((raw.controlTo - raw.controlFrom) / 1000),
    controlChanges: control.size,
    leaderChanges: terms.size,
    burstsWithChange,
    changesUnderLossAlone: [...terms].filter((t) => !inBurst.has(t)).length,
    termRise: maxTerm - before,
  };
}

/**
 * lossWindow runs the loss schedule on every system at once: a control window with no fault, then
 * `rate` loss on every bridge with a burst every `burstEveryMs` for `lossMs`, then heal.
 */
export async function lossWindow(
  systems: readonly FailoverSystem[],
  nets: readonly NetFaults[],
  p: { rate: number; burstMs: number; burstEveryMs: number; lossMs: number; controlMs: number },
  o: ScheduleOptions,
): Promise<RawLoss> {
  const termBefore: Partial<Record<SystemId, number>> = {};
  // Systems that were just (re)started settle first, so their first election is not in the window.
  for (const s of systems) await waitSettled(s, [], 0, o.settleTimeoutMs);
  await sleep(5000);
  for (const s of systems) termBefore[s.id] = (await waitSettled(s, [], 0, o.settleTimeoutMs)).term;
  const controlFrom = Date.now();
  o.log(`control window: ${p.controlMs / 1000} s without faults`);
  await sleep(p.controlMs);
  const controlTo = Date.now();
  for (const s of systems) termBefore[s.id] = (await waitSettled(s, [], 0, o.settleTimeoutMs)).term;
  const t0 = Date.now();
  await Promise.all(nets.map((n) => n.setLoss(p.rate)));
  o.log(
    `loss ${p.rate * 100}% on ${nets.map((n) => n.name).join(', ')}, ${p.burstMs / 1000} s bursts every ${p.burstEveryMs / 1000} s, for ${p.lossMs / 1000} s`,
  );
  const bursts: number[] = [];
  for (let k = 1; k * p.burstEveryMs + p.burstMs <= p.lossMs; k++) {
    await sleep(Math.max(0, t0 + k * p.burstEveryMs - Date.now()));
    bursts.push(Date.now());
    await Promise.all(nets.map((n) => n.burst(p.burstMs)));
    if (k % 5 === 0) {
      const terms = await Promise.all(
        systems.map(async (s) => `${s.id} term ${Math.max(0, ...(await s.poll()).views.map((v) => v.term))}`),
      );
      o.log(`burst ${k}: ${terms.join(', ')}`);
    }
  }
  await sleep(Math.max(0, t0 + p.lossMs - Date.now()));
  const t1 = Date.now();
  await Promise.all(nets.map((n) => n.heal()));
  for (const s of systems) await waitSettled(s, [], 0, o.settleTimeoutMs);
  await sleep(o.restMs);
  return {
    rate: p.rate,
    burstMs: p.burstMs,
    burstEveryMs: p.burstEveryMs,
    controlFrom,
    controlTo,
    t0,
    t1,
    t2: Date.now(),
    bursts,
    termBefore,
  };
}
