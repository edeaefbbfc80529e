/**
 * `npm run test:campaign`: the fault campaign. Random fault schedules from a seed
 * (schedule.ts) run in the deterministic simulator (run.ts) and are judged on their recorded history
 * (invariants.ts: one leader per term, no overlapping serving epochs, no committed entry lost,
 * convergence after the heal) and by the simulator's own checker.
 *
 *   npm run test:campaign                          CI size: 10,000 schedules (about 5 min on 2 cores)
 *   npm run test:campaign -- --long                100,000 schedules
 *   npm run test:campaign -- --seed N              a given campaign seed (default: drawn and printed)
 *   npm run test:campaign -- --seed N --schedule K replay schedule K of seed N alone, with its trace
 *   npm run test:campaign -- --schedules M --workers W
 *   npm run test:campaign -- --long --lab          also 50 runs in the network-namespace lab (root;
 *                                                  lab-campaign.ts; --lab-runs R to change)
 *   npm run test:campaign -- --json FILE           write the summary as JSON
 *   npm run test:campaign -- --clock wall          a deliberately wrong shell that feeds the robots'
 *                                                  wall clocks to the election: clock jumps then break
 *                                                  safety, and the campaign shows how a failure looks
 *
 * A failing schedule prints its faults, the violations, and the command that replays it. Exit codes:
 * 0 all passed, 1 a schedule failed, 2 bad arguments.
 */
import { randomInt } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { parseArgs } from 'node:util';
import { runCampaignSchedule, problemsOf, convergenceRule, type ClockMode } from './run.ts';
import { describeSchedule, generateSchedule } from './schedule.ts';
import { TIMING_PROFILES } from '../../statecharts/timing.ts';

export const CI_SCHEDULES = 10_000;
export const LONG_SCHEDULES = 100_000;
export const LONG_LAB_RUNS = 50;
/** The largest one-way delay a schedule draws (schedule.ts: 1..3 ms plus up to 10). */
const MAX_DELAY_MS = 13;

/** What a worker reports, per batch of schedules. */
interface Tally {
  schedules: number;
  simulatedMs: number;
  faults: Record<string, number>;
  clockJumps: number;
  leaderChanges: number;
  falseFailovers: number;
  /** ms from the heal to the agreed leader, by profile. */
  converged: Record<string, number[]>;
}

interface Failure {
  readonly index: number;
  readonly problems: readonly string[];
  readonly description: string;
}

type WorkerMessage =
  | { readonly kind: 'tally'; readonly tally: Tally }
  | { readonly kind: 'failure'; readonly failure: Failure }
  | { readonly kind: 'done' };

const emptyTally = (): Tally => ({
  schedules: 0,
  simulatedMs: 0,
  faults: {},
  clockJumps: 0,
  leaderChanges: 0,
  falseFailovers: 0,
  converged: {},
});

function mergeTally(into: Tally, t: Tally): void {
  into.schedules += t.schedules;
  into.simulatedMs += t.simulatedMs;
  into.clockJumps += t.clockJumps;
  into.leaderChanges += t.leaderChanges;
  into.falseFailovers += t.falseFailovers;
  for (const [k, n] of Object.entries(t.faults)) into.faults[k] = (into.faults[k] ?? 0) + n;
  for (const [p, xs] of Object.entries(t.converged)) (into.converged[p] ??= []).push(...xs);
}

/** runRange runs schedules index ≡ offset (mod stride) below `count`, reporting every 50. */
function runRange(
  seed: number,
  count: number,
  offset: number,
  stride: number,
  clock: ClockMode,
  post: (m: WorkerMessage) => void,
): void {
  let tally = emptyTally();
  for (let k = offset; k < count; k += stride) {
    const s = generateSchedule(seed, k);
    const o = runCampaignSchedule(s, { clock });
    tally.schedules++;
    tally.simulatedMs += o.simulatedMs;
    for (const f of s.faults) tally.faults[f.fault.kind] = (tally.faults[f.fault.kind] ?? 0) + 1;
    tally.clockJumps += s.clockJumps.length;
    tally.leaderChanges += o.leaderChanges;
    tally.falseFailovers += o.falseFailovers;
    if (o.convergedAfterMs !== null) (tally.converged[s.profile] ??= []).push(o.convergedAfterMs);
    const problems = problemsOf(o);
    if (problems.length) {
      post({ kind: 'tally', tally });
      post({ kind: 'failure', failure: { index: k, problems, description: describeSchedule(s) } });
      return;
    }
    if (tally.schedules % 50 === 0) {
      post({ kind: 'tally', tally });
      tally = emptyTally();
    }
  }
  post({ kind: 'tally', tally });
  post({ kind: 'done' });
}

const pct = (xs: readonly number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

export function replayCommand(seed: number, index: number, clock: ClockMode = 'monotonic'): string {
  return `npm run test:campaign -- --seed ${seed} --schedule ${index}${clock === 'wall' ? ' --clock wall' : ''}`;
}

function summarize(seed: number, t: Tally, wallMs: number, workers: number): string[] {
  const lines = [
    `campaign seed ${seed}: ${t.schedules} schedules passed in ${(wallMs / 1000).toFixed(1)} s on ${workers} workers ` +
      `(${(t.schedules / (wallMs / 1000)).toFixed(0)} schedules/s, ${(t.simulatedMs / 3_600_000).toFixed(1)} simulated hours)`,
    `  faults: ${Object.entries(t.faults)
      .sort()
      .map(([k, n]) => `${k} ${n}`)
      .join(', ')}, clock-jump ${t.clockJumps}`,
    `  leader changes ${t.leaderChanges}, of them with no leader fault before them ${t.falseFailovers}`,
  ];
  for (const p of Object.keys(TIMING_PROFILES)) {
    const c = t.converged[p] ?? [];
    if (!c.length) continue;
    const rule = convergenceRule(TIMING_PROFILES[p as keyof typeof TIMING_PROFILES], MAX_DELAY_MS);
    lines.push(
      `  ${p} timing: ${c.length} schedules; one agreed leader after the heal: p50 ${pct(c, 50).toFixed(0)} ms, ` +
        `p99 ${pct(c, 99).toFixed(0)} ms, max ${Math.max(...c).toFixed(0)} ms (bound ${rule.boundMs} ms)`,
    );
  }
  return lines;
}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        long: { type: 'boolean', default: false },
        seed: { type: 'string' },
        schedule: { type: 'string' },
        schedules: { type: 'string' },
        workers: { type: 'string' },
        lab: { type: 'boolean', default: false },
        'lab-runs': { type: 'string' },
        json: { type: 'string' },
        clock: { type: 'string', default: 'monotonic' },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(
      `campaign: ${(e as Error).message}\n  hint: see the comment at the top of test/campaign/campaign.ts\n`,
    );
    return 2;
  }
  if (args.help) {
    process.stdout.write(
      'npm run test:campaign -- [--long] [--seed N] [--schedule K] [--schedules M] [--workers W] [--lab] [--lab-runs R] [--json FILE]\n',
    );
    return 0;
  }
  const num = (v: string | undefined, what: string): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0)
      throw new Error(`--${what} must be a non-negative integer, got "${v}"`);
    return n;
  };
  let seed: number;
  let only: number | undefined;
  let count: number;
  let workers: number;
  let labRuns: number;
  const clock = args.clock as ClockMode;
  if (clock !== 'monotonic' && clock !== 'wall') {
    process.stderr.write(`campaign: --clock must be monotonic or wall, got "${args.clock}"\n`);
    return 2;
  }
  try {
    seed = num(args.seed, 'seed') ?? randomInt(2 ** 31);
    only = num(args.schedule, 'schedule');
    count = num(args.schedules, 'schedules') ?? (args.long ? LONG_SCHEDULES : CI_SCHEDULES);
    workers = Math.max(1, num(args.workers, 'workers') ?? Math.min(2, availableParallelism()));
    labRuns = num(args['lab-runs'], 'lab-runs') ?? LONG_LAB_RUNS;
  } catch (e) {
    process.stderr.write(`campaign: ${(e as Error).message}\n`);
    return 2;
  }

  // Replay one schedule, with the trace tail on failure.
  if (only !== undefined) {
    if (args.lab) {
      const { runLabCampaign } = await import('./lab-campaign.ts');
      const r = await runLabCampaign({
        seed,
        from: only,
        runs: 1,
        progress: (l) => process.stderr.write(`${l}\n`),
      });
      return r.failed.length ? 1 : 0;
    }
    const s = generateSchedule(seed, only);
    const o = runCampaignSchedule(s, { trace: true, clock });
    const problems = problemsOf(o);
    process.stdout.write(`${describeSchedule(s)}\n`);
    if (problems.length === 0) {
      process.stdout.write(
        `passed: ${o.leaderChanges} leader changes, single leader ${o.convergedAfterMs} ms after the heal\n`,
      );
      return 0;
    }
    process.stdout.write(
      `FAILED:\n  ${problems.join('\n  ')}\nlast trace lines:\n${o.traces.slice(-80).join('\n')}\n`,
    );
    return 1;
  }

  process.stderr.write(
    `campaign seed ${seed}: ${count} schedules on ${workers} workers (replay any with --seed ${seed})\n`,
  );
  const started = performance.now();
  const total = emptyTally();
  const failures: Failure[] = [];
  let lastProgress = started;
  await new Promise<void>((resolve) => {
    const pool: Worker[] = [];
    let running = workers;
    const onMessage = (m: WorkerMessage): void => {
      if (m.kind === 'tally') {
        mergeTally(total, m.tally);
        const now = performance.now();
        if (now - lastProgress > 15_000) {
          lastProgress = now;
          process.stderr.write(
            `  ${total.schedules}/${count} schedules, ${((now - started) / 1000).toFixed(0)} s\n`,
          );
        }
      } else if (m.kind === 'failure') {
        failures.push(m.failure);
        for (const w of pool) void w.terminate();
        resolve();
      } else if (--running === 0) resolve();
    };
    for (let w = 0; w < workers; w++) {
      const worker = new Worker(new URL(import.meta.url), {
        workerData: { campaignWorker: true, seed, count, offset: w, stride: workers, clock },
      });
      worker.on('message', onMessage);
      worker.on('error', (e) => {
        failures.push({
          index: -1,
          problems: [`worker ${w} crashed: ${e.stack ?? e.message}`],
          description: '',
        });
        for (const x of pool) void x.terminate();
        resolve();
      });
      pool.push(worker);
    }
  });
  const wallMs = performance.now() - started;

  if (failures.length) {
    for (const f of failures) {
      process.stdout.write(
        [
          `campaign seed ${seed}: schedule ${f.index} FAILED after ${total.schedules} schedules`,
          f.description,
          'violations:',
          ...f.problems.map((p) => `  ${p}`),
          f.index >= 0 ? `replay: ${replayCommand(seed, f.index, clock)}` : '',
          '',
        ].join('\n'),
      );
    }
    return 1;
  }
  const lines = summarize(seed, total, wallMs, workers);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (args.json)
    writeFileSync(
      args.json,
      `${JSON.stringify({ seed, wallMs, workers, ...total, converged: undefined, lines }, null, 2)}\n`,
    );

  if (args.lab) {
    if (!args.long)
      process.stderr.write('campaign: --lab runs the lab campaign (the issue asks for it in --long mode)\n');
    const { runLabCampaign } = await import('./lab-campaign.ts');
    const r = await runLabCampaign({
      seed,
      from: 0,
      runs: labRuns,
      progress: (l) => process.stderr.write(`${l}\n`),
    });
    process.stdout.write(`lab campaign seed ${seed}: ${r.runs - r.failed.length}/${r.runs} runs passed\n`);
    if (r.failed.length) return 1;
  }
  return 0;
}

const asWorker = workerData as {
  campaignWorker?: true;
  seed: number;
  count: number;
  offset: number;
  stride: number;
  clock: ClockMode;
} | null;
if (!isMainThread && asWorker?.campaignWorker) {
  runRange(asWorker.seed, asWorker.count, asWorker.offset, asWorker.stride, asWorker.clock, (m) =>
    parentPort!.postMessage(m),
  );
} else if (isMainThread && process.argv[1] === import.meta.filename) {
  process.exitCode = await main(process.argv.slice(2));
}
