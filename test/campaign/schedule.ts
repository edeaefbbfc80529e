/**
 * Fault-campaign schedules: random fault schedules drawn from a campaign seed, in the
 * shared fault vocabulary (lab/faults.ts), so a schedule runs in the simulator and, through the lab
 * hook, in the network-namespace lab. Pure: schedule K of seed N is always the same schedule, which
 * is what makes `npm run test:campaign -- --seed N --schedule K` replay a failure exactly.
 *
 * A schedule is a site (3 or 5 voters, sometimes learners) on a timing profile (mostly `fleet`,
 * what robots run), a faulty period of 5..60 s, then a heal at H: the network heals and every robot
 * is powered on and unfrozen; after H the site must converge. Faults in the faulty period:
 *
 *   kill / restart   power loss, and power back after 0.2..30 s (or at H)
 *   pause / resume   a frozen robot (SIGSTOP), 0.05..30 s, biased to around the election timeout
 *   partition        full: two or three groups; partial: a few links cut (non-transitive reachability)
 *   isolate          a robot's Wi-Fi is lost
 *   drop             loss on links (one link, one robot's links, or all links), 5..100 %
 *   burst            every link loses everything for 0.2..3 s
 *   transfer         a planned leadership handover
 *   heal             mid-schedule heals
 *   clock-jump       a robot's wall clock jumps by ±1 s..±1 h. Not in lab/faults.ts: the election
 *                    reads only the shell's monotonic clock, so in the simulator it is a no-op for
 *                    the core (run.ts can feed it to a deliberately wrong "wall clock" shell).
 */
import type { Fault, TimedFault } from '../../lab/faults.ts';
import { formatFault } from '../../lab/faults.ts';
import { Rng, seedFrom } from '../../statecharts/rng.ts';
import { TIMING_PROFILES, type TimingProfileName } from '../../statecharts/timing.ts';

export interface ClockJump {
  readonly atMs: number;
  /** A robot name or `leader` (whoever leads when it fires). */
  readonly node: string;
  readonly deltaMs: number;
}

export interface CampaignSchedule {
  /** The campaign seed and this schedule's number in it: together they name it. */
  readonly campaignSeed: number;
  readonly index: number;
  /** The simulator's seed (network randomness, robots' PRNGs). */
  readonly simSeed: number;
  readonly profile: TimingProfileName;
  readonly voters: number;
  readonly learners: number;
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  readonly duplicateRate: number;
  readonly proposeEveryMs: number;
  /** Faults of the vocabulary, sorted by time, all before healAtMs. */
  readonly faults: readonly TimedFault[];
  readonly clockJumps: readonly ClockJump[];
  /** At H: heal, restart every robot, resume every robot. */
  readonly healAtMs: number;
}

/** The longest freeze or power loss a schedule draws (the issue: pauses up to 30 s). */
export const MAX_OUTAGE_MS = 30_000;

export function robotNames(s: Pick<CampaignSchedule, 'voters' | 'learners'>): string[] {
  return Array.from({ length: s.voters + s.learners }, (_, i) => `r${i + 1}`);
}

/**
 * generateSchedule draws schedule `index` of campaign `campaignSeed`. Each schedule has its own PRNG
 * stream, so schedules can be generated (and run) in any order and on any worker.
 */
export function generateSchedule(campaignSeed: number, index: number): CampaignSchedule {
  const rng = new Rng(seedFrom(campaignSeed, `campaign-schedule#${index}`));
  const int = (lo: number, hi: number): number => lo + rng.int(hi - lo + 1);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  const profile: TimingProfileName = rng.chance(0.8) ? 'fleet' : 'lab';
  const t = TIMING_PROFILES[profile];
  const voters = rng.chance(0.55) ? 3 : 5;
  const learners = rng.chance(0.2) ? int(1, 2) : 0;
  const names = robotNames({ voters, learners });
  const target = (): string => (rng.chance(0.35) ? 'leader' : pick(names));
  const span = int(5_000, 60_000);
  const start = 3_000; // the site has formed (boot election) before the first fault
  const H = start + span;
  const faults: TimedFault[] = [];
  const clockJumps: ClockJump[] = [];
  const add = (atMs: number, fault: Fault): void => {
    if (atMs < H) faults.push({ atMs: Math.round(atMs), fault });
  };
  /** An outage length: mostly around the election timeout (the interesting edge), up to 30 s. */
  const outage = (): number => {
    const r = rng.next();
    if (r < 0.35) return int(50, t.electionTimeoutMinMs - 1); // ridden out
    if (r < 0.7) return int(t.electionTimeoutMinMs, 3 * t.electionTimeoutMaxMs); // a failover
    return int(3 * t.electionTimeoutMaxMs, MAX_OUTAGE_MS); // long gone
  };
  const count = int(1, 12);
  for (let i = 0; i < count; i++) {
    const at = start + rng.next() * span;
    const kind = pick([
      'kill',
      'kill',
      'pause',
      'pause',
      'partition',
      'partial',
      'isolate',
      'drop',
      'burst',
      'transfer',
      'heal',
      'clock',
      'clock',
    ] as const);
    switch (kind) {
      case 'kill':
      case 'pause': {
        const node = kind === 'kill' && rng.chance(0.5) ? 'leader' : target();
        add(at, { kind, node });
        // A named robot comes back after its outage; `leader` (resolved when the fault fires) at H.
        if (node !== 'leader' && rng.chance(0.8))
          add(at + outage(), { kind: kind === 'kill' ? 'restart' : 'resume', node });
        break;
      }
      case 'partition': {
        const shuffled = [...names];
        for (let x = shuffled.length - 1; x > 0; x--) {
          const y = rng.int(x + 1);
          [shuffled[x], shuffled[y]] = [shuffled[y]!, shuffled[x]!];
        }
        const cuts = rng.chance(0.7)
          ? [int(1, names.length - 1)]
          : [1, int(2, Math.max(2, names.length - 1))];
        const groups: string[][] = [];
        let from = 0;
        for (const c of [...new Set(cuts)].sort((a, b) => a - b).concat(names.length)) {
          if (c > from) groups.push(shuffled.slice(from, c));
          from = c;
        }
        if (groups.length >= 2) add(at, { kind: 'partition', groups });
        break;
      }
      case 'partial': {
        // Cut a few links: robots that still reach a common neighbour but not each other.
        for (let k = int(1, 3); k > 0; k--) {
          const a = pick(names);
          const b = pick(names.filter((n) => n !== a));
          add(at, { kind: 'cut', a: rng.chance(0.3) ? 'leader' : a, b });
        }
        break;
      }
      case 'isolate':
        add(at, { kind: 'isolate', node: target() });
        break;
      case 'drop': {
        const rate = pick([0.05, 0.1, 0.2, 0.3, 0.5, 1]);
        const scope = rng.next();
        if (scope < 0.4) {
          const a = target();
          const b = pick(names.filter((n) => n !== a));
          add(at, { kind: 'drop', from: a, to: b, rate });
        } else if (scope < 0.7) {
          const a = target();
          for (const b of names)
            if (b !== a) {
              add(at, { kind: 'drop', from: a, to: b, rate });
              add(at, { kind: 'drop', from: b, to: a, rate });
            }
        } else {
          for (const a of names)
            for (const b of names)
              if (a !== b) add(at, { kind: 'drop', from: a, to: b, rate: Math.min(rate, 0.3) });
        }
        break;
      }
      case 'burst':
        add(at, { kind: 'burst', durationMs: Math.min(int(200, 3_000), Math.max(1, H - at - 1)) });
        break;
      case 'transfer':
        add(
          at,
          rng.chance(0.5) ? { kind: 'transfer' } : { kind: 'transfer', to: pick(names.slice(0, voters)) },
        );
        break;
      case 'heal':
        add(at, { kind: 'heal' });
        break;
      case 'clock': {
        const mag = pick([1_000, 5_000, 60_000, 3_600_000]);
        clockJumps.push({ atMs: Math.round(at), node: target(), deltaMs: rng.chance(0.5) ? mag : -mag });
        break;
      }
    }
  }
  faults.sort((a, b) => a.atMs - b.atMs);
  clockJumps.sort((a, b) => a.atMs - b.atMs);
  const delayMinMs = int(1, 3);
  return {
    campaignSeed,
    index,
    simSeed: seedFrom(campaignSeed, `campaign-sim#${index}`) >>> 0,
    profile,
    voters,
    learners,
    delayMinMs,
    delayMaxMs: delayMinMs + int(0, 10),
    duplicateRate: rng.chance(0.3) ? 0.05 : 0,
    proposeEveryMs: pick([500, 1_000, 2_000]),
    faults,
    clockJumps,
    healAtMs: H,
  };
}

/** describeSchedule: one line per fault, in the vocabulary, for failure reports. */
export function describeSchedule(s: CampaignSchedule): string {
  const lines = [
    `schedule ${s.index} of campaign seed ${s.campaignSeed}: ${s.voters} voters + ${s.learners} learners, ` +
      `profile ${s.profile}, sim seed ${s.simSeed}, delay ${s.delayMinMs}..${s.delayMaxMs} ms, dup ${s.duplicateRate}, ` +
      `propose every ${s.proposeEveryMs} ms, heal at ${s.healAtMs} ms`,
  ];
  const timed = [
    ...s.faults.map((f) => ({ atMs: f.atMs, text: formatFault(f.fault) })),
    ...s.clockJumps.map((c) => ({
      atMs: c.atMs,
      text: `clock-jump:${c.node}=${c.deltaMs > 0 ? '+' : ''}${c.deltaMs}ms`,
    })),
  ].sort((a, b) => a.atMs - b.atMs);
  for (const f of timed) lines.push(`  ${String(f.atMs).padStart(6)} ms  ${f.text}`);
  lines.push(`  ${String(s.healAtMs).padStart(6)} ms  heal, restart:all, resume:all`);
  return lines.join('\n');
}
