/**
 * `edgectl sim`: run the deterministic fleet simulator and report the election's behaviour.
 * The operation is separate from its yargs adapter (cli/commands/sim.ts) so tests call it directly.
 */
import { SafetyViolationError, UsageError } from '../../agent/errors.ts';
import { faultTargets, formatFault, parseDuration, parseTimedFault } from '../../lab/faults.ts';
import {
  Simulator,
  defaultSimOptions,
  type BurstSpec,
  type SimOptions,
  type SimResult,
} from '../../lab/sim/simulator.ts';
import { summarize } from '../../lab/sim/stats.ts';
import { TIMING_PROFILES, validateTiming, type TimingProfileName } from '../../statecharts/timing.ts';
import { seconds, table, type Io, type OutputFormat } from '../output.ts';
export { fraction, wholeNumber } from '../flags.ts';

export interface SimCommandOptions {
  readonly nodes: number;
  readonly voters?: number;
  /** Witness voters w1..wN beside the robots: they vote, never lead. */
  readonly witnesses?: number;
  readonly seed: number;
  readonly duration: string;
  readonly loss: number;
  readonly delay: string;
  readonly dup: number;
  readonly burst: readonly string[];
  readonly fault: readonly string[];
  readonly profile: TimingProfileName;
  readonly proposeEvery: string;
  readonly trace: boolean;
  readonly output: OutputFormat;
}

/** SimReport is the JSON that `edgectl sim --output json` prints (documented in docs/simulator.md). */
export interface SimReport {
  readonly profile: TimingProfileName;
  readonly seed: number;
  readonly durationMs: number;
  readonly nodes: number;
  readonly voters: number;
  readonly witnesses: number;
  readonly lossRate: number;
  readonly firstLeaderMs: number | null;
  readonly timeline: SimResult['timeline'];
  readonly faults: SimResult['faultLog'];
  /** The --burst schedule: every link loses everything from `startMs` for `durationMs`, maybe `everyMs`. */
  readonly bursts: readonly BurstSpec[];
  readonly failovers: SimResult['failovers'];
  readonly failoverLatencyMs: { count: number; p50: number | null; p99: number | null; max: number | null };
  readonly transfers: SimResult['transfers'];
  readonly transferLatencyMs: { count: number; p50: number | null; p99: number | null; max: number | null };
  readonly falseFailovers: number;
  readonly falseFailoverEvents: SimResult['falseFailovers'];
  readonly riddenOutFaults: number;
  readonly pendingFault: string | null;
  readonly safetyViolations: SimResult['violations'];
  readonly messages: SimResult['messages'] & { readonly perHeartbeatInterval: number };
  readonly committedEntries: number;
  readonly finalLeader: string | null;
  readonly finalTerm: number;
  readonly traces?: readonly string[];
}

/** The longest simulated run: a day of site time is more than any question needs. */
export const MAX_SIM_DURATION_MS = 24 * 3_600_000;
/** Seeds are 32-bit: the PRNG keeps 32 bits, so a larger number would silently alias a smaller one. */
export const MAX_SEED = 0xffff_ffff;

/** parseBurst reads `1.5s@30s` (once) or `1.5s@30s/60s` (from 30 s, every 60 s). */
export function parseBurst(spec: string): BurstSpec {
  const m = /^([^@]+)@([^/]+)(?:\/(.+))?$/.exec(spec.trim());
  if (!m) {
    throw new UsageError('BAD_BURST', `burst "${spec}" is malformed`, {
      hint: 'write <length>@<start>[/<every>], e.g. 1.5s@30s or 1.5s@30s/60s',
    });
  }
  const burst: BurstSpec = {
    durationMs: parseDuration(m[1]!, 'burst length'),
    startMs: parseDuration(m[2]!, 'burst start'),
  };
  return m[3] ? { ...burst, everyMs: parseDuration(m[3], 'burst period') } : burst;
}

function parseDelay(spec: string): { min: number; max: number } {
  const [a, b] = spec.split('-');
  const min = parseDuration(a ?? '', 'delay');
  const max = b === undefined ? min : parseDuration(b, 'delay');
  if (max < min)
    throw new UsageError('BAD_DELAY', `delay "${spec}" has its maximum below its minimum`, {
      hint: 'write <min>-<max>, e.g. 2ms-10ms',
    });
  return { min, max };
}

/** withPath names the flag at fault in a parse error of that flag's value. */
function withPath<T>(flag: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof UsageError && e.path === null)
      throw new UsageError(e.code, e.message, { hint: e.hint, cause: e.cause, path: flag });
    throw e;
  }
}

/** buildSimOptions turns flags into simulator options, rejecting every bad flag with its fix. */
export function buildSimOptions(o: SimCommandOptions) {
  const timing = TIMING_PROFILES[o.profile];
  if (!timing) {
    throw new UsageError('BAD_PROFILE', `unknown profile "${o.profile}"`, {
      hint: `use one of: ${Object.keys(TIMING_PROFILES).join(', ')}`,
    });
  }
  const problems = validateTiming(timing);
  if (problems.length)
    throw new UsageError('BAD_PROFILE', `profile ${o.profile} is invalid: ${problems.join('; ')}`);
  const voters = o.voters ?? Math.min(o.nodes, 5);
  if (!Number.isInteger(o.nodes) || o.nodes < 1 || o.nodes > 1000) {
    throw new UsageError('BAD_NODES', `--nodes ${o.nodes} is out of range`, {
      hint: 'use 1 to 1000 robots',
      path: '--nodes',
    });
  }
  if (!Number.isInteger(voters) || voters < 1 || voters > 7 || voters > o.nodes) {
    throw new UsageError('BAD_VOTERS', `--voters ${voters} is out of range for ${o.nodes} robots`, {
      hint: 'a site has 1 to 7 voters (3 or 5 is best), and no more than --nodes',
      path: '--voters',
    });
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0 || o.seed > MAX_SEED) {
    throw new UsageError('BAD_SEED', `--seed ${o.seed} is not a 32-bit seed`, {
      hint: `use a whole number from 0 to ${MAX_SEED}: the run keeps 32 bits of it`,
      path: '--seed',
    });
  }
  const witnesses = o.witnesses ?? 0;
  if (!Number.isInteger(witnesses) || witnesses < 0 || voters + witnesses > 7) {
    throw new UsageError('BAD_WITNESSES', `--witnesses ${witnesses} is out of range with ${voters} voters`, {
      hint: 'voters and witnesses together are at most 7 (a witness is the third vote of a two-robot site)',
    });
  }
  for (const [name, v] of [
    ['--loss', o.loss],
    ['--dup', o.dup],
  ] as const) {
    if (!(v >= 0 && v <= 1))
      throw new UsageError('BAD_RATE', `${name} ${v} is not a fraction`, {
        hint: `write ${name} as 0..1, e.g. 0.1 for 10%`,
      });
  }
  const delay = withPath('--delay', () => parseDelay(o.delay));
  const durationMs = withPath('--duration', () => parseDuration(o.duration, '--duration'));
  if (durationMs <= 0 || durationMs > MAX_SIM_DURATION_MS) {
    throw new UsageError('BAD_DURATION', `--duration ${o.duration} is out of range`, {
      hint: 'simulate more than 0 and at most 24h, e.g. 60s, 10m or 2h',
      path: '--duration',
    });
  }
  const faults = withPath('--fault', () => o.fault.map(parseTimedFault));
  const bursts = withPath('--burst', () => o.burst.map(parseBurst));
  const known = new Set(
    Array.from({ length: o.nodes }, (_, i) => `r${i + 1}`)
      .concat(Array.from({ length: witnesses }, (_, i) => `w${i + 1}`))
      .concat('leader', 'all'),
  );
  for (const f of faults) {
    if (f.atMs >= durationMs) {
      throw new UsageError(
        'BAD_FAULT',
        `fault ${formatFault(f.fault)} at ${seconds(f.atMs)} comes after the run ends (${seconds(durationMs)})`,
        { hint: 'make --duration longer, or move the fault inside the run', path: '--fault' },
      );
    }
    if (f.fault.kind === 'transfer' && f.fault.to && /^r\d+$/.test(f.fault.to)) {
      const index = Number(f.fault.to.slice(1));
      if (index > voters && index <= o.nodes) {
        throw new UsageError(
          'BAD_FAULT',
          `fault transfer:${f.fault.to} hands leadership to a learner: ${f.fault.to} is not a voter`,
          {
            hint: `transfer to a voter (r1..r${voters}), or leave the target out to pick the best`,
            path: '--fault',
          },
        );
      }
    }
    for (const n of faultTargets(f.fault)) {
      if (!known.has(n)) {
        throw new UsageError(
          'BAD_FAULT',
          `fault at ${f.atMs} ms names robot "${n}", which this site does not have`,
          {
            hint: `robots are r1..r${o.nodes}, "leader" or "all"`,
            path: '--fault',
          },
        );
      }
    }
  }
  for (const b of bursts) {
    if (b.startMs >= durationMs) {
      throw new UsageError(
        'BAD_BURST',
        `burst at ${seconds(b.startMs)} comes after the run ends (${seconds(durationMs)})`,
        { hint: 'make --duration longer, or start the burst inside the run', path: '--burst' },
      );
    }
    if (b.everyMs !== undefined && b.everyMs <= 0) {
      throw new UsageError('BAD_BURST', `burst period ${seconds(b.everyMs)} must be more than 0`, {
        hint: 'write <length>@<start>/<every> with every > 0, e.g. 1.5s@30s/60s',
        path: '--burst',
      });
    }
  }
  return {
    ...defaultSimOptions(timing),
    nodes: o.nodes,
    voters,
    witnesses,
    seed: o.seed,
    durationMs,
    lossRate: o.loss,
    delayMinMs: delay.min,
    delayMaxMs: delay.max,
    duplicateRate: o.dup,
    bursts,
    faults,
    proposeEveryMs: withPath('--propose-every', () =>
      o.proposeEvery === '0' ? null : parseDuration(o.proposeEvery, '--propose-every'),
    ),
    trace: o.trace,
  };
}

export function toReport(o: SimCommandOptions, r: SimResult): SimReport {
  const heartbeats = r.durationMs / TIMING_PROFILES[o.profile].heartbeatMs;
  const report: SimReport = {
    profile: o.profile,
    seed: r.seed,
    durationMs: r.durationMs,
    nodes: r.nodes,
    voters: r.voters,
    witnesses: r.witnesses,
    lossRate: o.loss,
    firstLeaderMs: r.firstLeaderMs,
    timeline: r.timeline,
    faults: r.faultLog,
    bursts: o.burst.map(parseBurst),
    failovers: r.failovers,
    failoverLatencyMs: summarize(r.failovers.map((f) => f.latencyMs)),
    transfers: r.transfers,
    transferLatencyMs: summarize(r.transfers.map((f) => f.latencyMs)),
    falseFailovers: r.falseFailovers.length,
    falseFailoverEvents: r.falseFailovers,
    riddenOutFaults: r.riddenOutFaults,
    pendingFault: r.pendingFault,
    safetyViolations: r.violations,
    messages: { ...r.messages, perHeartbeatInterval: heartbeats > 0 ? r.messages.sent / heartbeats : 0 },
    committedEntries: r.committedEntries,
    finalLeader: r.finalLeader,
    finalTerm: r.finalTerm,
  };
  return o.trace ? { ...report, traces: r.traces } : report;
}

export function renderSimTable(rep: SimReport): string {
  const lines: string[] = [];
  lines.push(
    `edgectl sim: ${rep.nodes} robots (${rep.voters} voters${rep.witnesses ? ` + ${rep.witnesses} witness${rep.witnesses > 1 ? 'es' : ''}` : ''}), ${rep.profile} profile, seed ${rep.seed}, ${seconds(rep.durationMs)}, loss ${(rep.lossRate * 100).toFixed(0)}%`,
    '',
  );
  const first = rep.timeline[0];
  lines.push(
    table(
      ['measure', 'value'],
      [
        [
          'first leader',
          first ? `${seconds(rep.firstLeaderMs)} (${first.leader}, term ${first.term})` : 'none',
        ],
        [
          'failovers',
          `${rep.failoverLatencyMs.count}  p50 ${seconds(rep.failoverLatencyMs.p50)}  p99 ${seconds(rep.failoverLatencyMs.p99)}`,
        ],
        [
          'transfers',
          `${rep.transferLatencyMs.count}  p50 ${seconds(rep.transferLatencyMs.p50)}  p99 ${seconds(rep.transferLatencyMs.p99)}`,
        ],
        ['false failovers', String(rep.falseFailovers)],
        ['safety violations', String(rep.safetyViolations.length)],
        ['committed entries', String(rep.committedEntries)],
        [
          'messages',
          `${rep.messages.sent} sent, ${rep.messages.lost} lost, ${rep.messages.perHeartbeatInterval.toFixed(1)} per heartbeat interval`,
        ],
        ['final leader', rep.finalLeader ? `${rep.finalLeader} (term ${rep.finalTerm})` : 'none'],
      ],
    ),
  );
  lines.push('', 'leader changes:');
  lines.push(
    table(
      ['time', 'leader', 'term', 'cause'],
      rep.timeline.map((c) => [seconds(c.atMs), c.leader, c.term, c.cause]),
    ),
  );
  // Bursts are faults too (every link loses everything): list them with the timed faults, in time order.
  const rows: [number, string, string][] = [
    ...rep.faults.map((f): [number, string, string] => [f.atMs, f.fault, f.affectedLeader ? 'yes' : 'no']),
    ...rep.bursts.map((b): [number, string, string] => [
      b.startMs,
      `burst ${seconds(b.durationMs)} on every link${b.everyMs ? `, every ${seconds(b.everyMs)}` : ''}`,
      '-',
    ]),
  ].sort((a, b) => a[0] - b[0]);
  if (rows.length) {
    lines.push('', 'faults:');
    lines.push(
      table(
        ['time', 'fault', 'hit the leader'],
        rows.map(([at, f, hit]) => [seconds(at), f, hit]),
      ),
    );
  }
  if (rep.safetyViolations.length) {
    lines.push('', 'SAFETY VIOLATIONS:');
    lines.push(
      table(
        ['time', 'kind', 'detail'],
        rep.safetyViolations.map((v) => [seconds(v.atMs), v.kind, v.detail]),
      ),
    );
  }
  if (rep.traces?.length) lines.push('', 'trace:', ...rep.traces);
  return lines.join('\n');
}

/** runSim runs the simulator, prints the report and throws if any safety invariant broke. */
export function runSim(
  o: SimCommandOptions,
  io: Io,
  simulate: (opts: SimOptions, progress: (simulatedMs: number) => void) => SimResult = (opts, progress) =>
    new Simulator(opts).run(progress),
  wallClockMs: () => number = () => performance.now(),
): SimReport {
  const opts = buildSimOptions(o);
  // A long run says how far it is on stderr every few seconds, so it never looks hung.
  const started = wallClockMs();
  let lastShown = started;
  const progress = (simulatedMs: number) => {
    const now = wallClockMs();
    if (now - lastShown < 5000 || simulatedMs >= opts.durationMs) return;
    lastShown = now;
    const done = simulatedMs / opts.durationMs;
    const left = ((now - started) / done) * (1 - done);
    io.err(
      `sim: ${seconds(simulatedMs)} of ${seconds(opts.durationMs)} simulated (${(done * 100).toFixed(0)}%), about ${Math.ceil(left / 1000)}s left`,
    );
  };
  const report = toReport(o, simulate(opts, progress));
  io.out(o.output === 'json' ? JSON.stringify(report, null, 2) : renderSimTable(report));
  if (report.safetyViolations.length > 0) {
    const first = report.safetyViolations[0]!;
    throw new SafetyViolationError(
      `${report.safetyViolations.length} safety violation(s); first at ${seconds(first.atMs)}: ${first.kind}: ${first.detail}`,
      { hint: `replay with the same flags (seed ${o.seed}) and --trace to see every election step` },
    );
  }
  return report;
}
