/**
 * `npm run bench:sim`: the election benchmark (docs/benchmarks/sim.md). It is a benchmark, not a
 * test: it measures and reports, and marks each goal met or missed, but never fails the build.
 *
 * Matrix: 3, 5 and 7 voters, and 50 and 200 members with 5 voters; loss 0, 10%, 30%, and 10% with
 * 1.5 s bursts on every link every 30 s. In every run the leader loses power every 20 s and all
 * robots are powered on again 8 s later, so each run yields many failovers and a long stretch of
 * normal operation in which any leader change is a false failover.
 *
 * Flags: --quick (short runs, for a smoke check), --out <dir> (default docs/benchmarks).
 */
import { execSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseTimedFault, type TimedFault } from '../../lab/faults.ts';
import { Simulator, defaultSimOptions, type BurstSpec } from '../../lab/sim/simulator.ts';
import { percentile } from '../../lab/sim/stats.ts';
import { fleetTiming } from '../../statecharts/timing.ts';

const quick = process.argv.includes('--quick');
const outDir = process.argv.includes('--out')
  ? process.argv[process.argv.indexOf('--out') + 1]!
  : 'docs/benchmarks';

interface Row {
  site: string;
  nodes: number;
  voters: number;
  loss: string;
  simHours: number;
  failovers: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  falseFailovers: number;
  falsePerHour: number;
  violations: number;
  msgsPerHeartbeat: number;
  cpuSecondsPerNodeHour: number;
}

function killSchedule(durationMs: number): TimedFault[] {
  const out: TimedFault[] = [];
  for (let t = 20_000; t + 8_000 < durationMs; t += 20_000) {
    out.push(parseTimedFault(`kill-leader@${t}ms`), parseTimedFault(`restart:all@${t + 8_000}ms`));
  }
  return out;
}

function runOne(
  site: string,
  nodes: number,
  voters: number,
  lossName: string,
  loss: number,
  bursts: BurstSpec[],
  durationMs: number,
  seed: number,
): Row {
  const c0 = process.cpuUsage();
  const r = new Simulator({
    ...defaultSimOptions(fleetTiming),
    nodes,
    voters,
    seed,
    durationMs,
    lossRate: loss,
    bursts,
    faults: killSchedule(durationMs),
  }).run();
  const cpu = process.cpuUsage(c0);
  const hours = durationMs / 3_600_000;
  const lat = r.failovers.map((f) => f.latencyMs);
  return {
    site,
    nodes,
    voters,
    loss: lossName,
    simHours: hours,
    failovers: lat.length,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    max: lat.length ? Math.max(...lat) : null,
    falseFailovers: r.falseFailovers.length,
    falsePerHour: r.falseFailovers.length / hours,
    violations: r.violations.length,
    msgsPerHeartbeat: r.messages.sent / (durationMs / fleetTiming.heartbeatMs),
    cpuSecondsPerNodeHour: (cpu.user + cpu.system) / 1e6 / (nodes * hours),
  };
}

const sites: [string, number, number, number][] = [
  // name, members, voters, simulated minutes
  ['3 voters', 3, 3, 60],
  ['5 voters', 5, 5, 60],
  ['7 voters', 7, 7, 60],
  ['50 members (5 voters)', 50, 5, 20],
  ['200 members (5 voters)', 200, 5, 10],
];
const losses: [string, number, BurstSpec[]][] = [
  ['0%', 0, []],
  ['10%', 0.1, []],
  ['30%', 0.3, []],
  ['10% + 1.5 s bursts', 0.1, [{ startMs: 5_000, durationMs: 1_500, everyMs: 30_000 }]],
];

const rows: Row[] = [];
let seed = 1000;
for (const [site, nodes, voters, minutes] of sites) {
  for (const [lossName, loss, bursts] of losses) {
    const dur = (quick ? Math.min(minutes, 2) : minutes) * 60_000;
    const row = runOne(site, nodes, voters, lossName, loss, bursts, dur, seed++);
    rows.push(row);
    process.stderr.write(
      `${site} / ${lossName}: ${row.failovers} failovers p50 ${row.p50?.toFixed(0)} ms p99 ${row.p99?.toFixed(0)} ms, false ${row.falseFailovers}, violations ${row.violations}\n`,
    );
  }
}

// Planned leadership transfer: 5 voters, 10% loss, a transfer every 10 s.
const transferMinutes = quick ? 2 : 30;
const transferFaults: TimedFault[] = [];
for (let t = 10_000; t < transferMinutes * 60_000; t += 10_000)
  transferFaults.push(parseTimedFault(`transfer@${t}ms`));
const tr = new Simulator({
  ...defaultSimOptions(fleetTiming),
  seed: 7,
  durationMs: transferMinutes * 60_000,
  lossRate: 0.1,
  faults: transferFaults,
}).run();
const tlat = tr.transfers.map((t) => t.latencyMs);
const transfer = {
  count: tlat.length,
  p50: percentile(tlat, 50),
  p99: percentile(tlat, 99),
  max: tlat.length ? Math.max(...tlat) : null,
  violations: tr.violations.length,
};

const five10 = rows.find((r) => r.site === '5 voters' && r.loss === '10%')!;
const burstRows = rows.filter((r) => r.loss.includes('bursts'));
const goals = [
  [
    '5 voters, 10% loss: new leader p50 ≤ 2.0 s',
    five10.p50 !== null && five10.p50 <= 2000,
    `${(five10.p50! / 1000).toFixed(2)} s`,
  ],
  [
    '5 voters, 10% loss: new leader p99 ≤ 3.5 s',
    five10.p99 !== null && five10.p99 <= 3500,
    `${(five10.p99! / 1000).toFixed(2)} s`,
  ],
  [
    'zero false failovers with 1.5 s loss bursts (all sites)',
    burstRows.every((r) => r.falseFailovers === 0),
    `${burstRows.reduce((a, r) => a + r.falseFailovers, 0)} in ${burstRows.reduce((a, r) => a + r.simHours, 0).toFixed(1)} simulated hours`,
  ],
  [
    'zero safety violations (all runs)',
    rows.every((r) => r.violations === 0) && transfer.violations === 0,
    `${rows.reduce((a, r) => a + r.violations, 0) + transfer.violations}`,
  ],
  [
    'planned leadership transfer ≤ 300 ms (p99)',
    transfer.p99 !== null && transfer.p99 <= 300,
    `p50 ${transfer.p50?.toFixed(0)} ms, p99 ${transfer.p99?.toFixed(0)} ms over ${transfer.count}`,
  ],
] as const;

const s = (ms: number | null) => (ms === null ? '-' : (ms / 1000).toFixed(2));
let commit = 'unknown';
try {
  commit = execSync('git rev-parse --short HEAD', { stdio: ['ignore', 'pipe', 'ignore'] })
    .toString()
    .trim();
} catch {
  /* not a checkout */
}
const md = `# Election benchmark (simulator)

Generated by \`npm run bench:sim\`${quick ? ' --quick (short runs: figures are indicative only)' : ''} on ${new Date().toISOString().slice(0, 10)}, commit ${commit}.
Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, Node ${process.version}. Fleet timing profile
(heartbeat ${fleetTiming.heartbeatMs} ms, election timeout ${fleetTiming.electionTimeoutMinMs}–${fleetTiming.electionTimeoutMaxMs} ms), one-way delay 2–10 ms.

Each run: the leader loses power every 20 s and every robot is powered on again 8 s later; a site log
entry is proposed every 5 s. Failover = time from the power loss to a new leader elected. A false
failover is a leader change with no leader fault before it. Bursts drop every datagram on every link
for 1.5 s, every 30 s. CPU time is this process's user+system time per simulated robot-hour.

## Goals (fleet profile)

| goal | result | measured |
| --- | --- | --- |
${goals.map(([g, ok, v]) => `| ${g} | ${ok ? 'met' : '**missed**'} | ${v} |`).join('\n')}

## Failover and overhead

| site | loss | simulated h | failovers | p50 s | p99 s | max s | false failovers (per h) | violations | messages / heartbeat interval | CPU s / node-hour |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows.map((r) => `| ${r.site} | ${r.loss} | ${r.simHours.toFixed(2)} | ${r.failovers} | ${s(r.p50)} | ${s(r.p99)} | ${s(r.max)} | ${r.falseFailovers} (${r.falsePerHour.toFixed(2)}) | ${r.violations} | ${r.msgsPerHeartbeat.toFixed(1)} | ${r.cpuSecondsPerNodeHour.toFixed(3)} |`).join('\n')}

## Planned leadership transfer

5 voters, 10% loss, a transfer every 10 s for ${transferMinutes} simulated minutes: ${transfer.count} transfers,
p50 ${transfer.p50?.toFixed(0)} ms, p99 ${transfer.p99?.toFixed(0)} ms, max ${transfer.max?.toFixed(0)} ms, violations ${transfer.violations}.

## Reading the figures

- Failover is bounded below by the stickiness window (${fleetTiming.electionTimeoutMinMs} ms): no voter may campaign
  sooner, which is what lets a site ride out 1.5 s loss bursts (docs/timing.md).
- At 30% loss the p99 grows because PreVote and Vote round trips are lost and re-sent; safety does not change.
- Learners (members beyond the voters) hear the leader every ${fleetTiming.learnerHeartbeatMs} ms, so messages per
  heartbeat interval grow by about 2 × (learners) × ${fleetTiming.heartbeatMs}/${fleetTiming.learnerHeartbeatMs} rather than 2 × learners.
`;
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'sim.md'), md);
writeFileSync(join(outDir, 'sim.json'), JSON.stringify({ rows, transfer, goals }, null, 2));
process.stderr.write(`wrote ${join(outDir, 'sim.md')}\n`);
