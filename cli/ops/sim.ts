/**
 * `edgectl sim`: run the deterministic fleet simulator and report the election's behaviour.
 * The operation is separate from its yargs adapter (cli/commands/sim.ts) so tests call it directly.
 */
import { SafetyViolationError, UsageError } from '../../agent/errors.ts';
import { faultTargets, parseDuration, parseTimedFault } from '../../lab/faults.ts';
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
    throw new UsageError('BAD_NODES', `--nodes ${o.nodes} is out of range`, { hint: 'use 1 to 1000 robots' });
  }
  if (!Number.isInteger(voters) || voters < 1 || voters > 7 || voters > o.nodes) {
    throw new UsageError('BAD_VOTERS', `--voters ${voters} is out of range for ${o.nodes} robots`, {
      hint: 'a site has 1 to 7 voters (3 or 5 is best), and no more than --nodes',
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
  const delay = parseDelay(o.delay);
  const durationMs = parseDuration(o.duration, '--duration');
  const faults = o.fault.map(parseTimedFault);
  const known = new Set(
    Array.from({ length: o.nodes }, (_, i) => `r${i + 1}`)
      .concat(Array.from({ length: witnesses }, (_, i) => `w${i + 1}`))
      .concat('leader', 'all'),
  );
  for (const f of faults) {
    for (const n of faultTargets(f.fault)) {
      if (!known.has(n)) {
        throw new UsageError(
          'BAD_FAULT',
          `fault at ${f.atMs} ms names robot "${n}", which this site does not have`,
          {
            hint: `robots are r1..r${o.nodes}, "leader" or "all"`,
          },
        );
      }
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
    bursts: o.burst.map(parseBurst),
    faults,
    proposeEveryMs: o.proposeEvery === '0' ? null : parseDuration(o.proposeEvery, '--propose-every'),
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
  if (rep.faults.length) {
    lines.push('', 'faults:');
    lines.push(
      table(
        ['time', 'fault', 'hit the leader'],
        rep.faults.map((f) => [seconds(f.atMs), f.fault, f.affectedLeader ? 'yes' : 'no']),
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
  simulate: (opts: SimOptions) => SimResult = (opts) => new Simulator(opts).run(),
): SimReport {
  const report = toReport(o, simulate(buildSimOptions(o)));
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
