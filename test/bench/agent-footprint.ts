/**
 * `npm run bench:agent`: the agent's idle footprint (docs/benchmarks/agent.md). Six real agents run
 * in network namespaces (one leader, five peers each) on the fleet profile with mDNS; after the
 * site settles, it samples the leader's, a follower's and the learner's RSS and CPU time from /proc.
 * A bare Node process with the leader's traffic pattern (the floor) runs during the same window, so
 * both see the same machine load. Each round starts fresh agents; the report gives the median and
 * the spread over the rounds. Goals: idle RSS ≤ 60 MB, idle CPU ≤ 1% of a core with 5
 * peers. Needs root.
 *
 * The agents run the tests' agent entry (agent/testing/main.ts), bundled like the robot's (npm run
 * build:test-agent), with the node flags and environment of the systemd unit
 * (templates/edgectl-agent.service), and the robot's control-plane runtime, k3s, over the robot
 * model where k3s is absent (agent/k3s/testing/model-robot.ts: the plans run against the model, the
 * leader's site goes through the robot's Kubernetes client child to the model's API server, in a
 * file), so the bench measures what a robot runs.
 * Knobs:
 *   EDGECTL_BENCH_RUNTIME   k3s (the robot's, over the robot model) or memory (the in-memory twin)
 *   EDGECTL_BENCH_SECONDS   sampling window per round (300: a leader's periodic work, a reconcile
 *                           and a snapshot, comes every 5 minutes, and the window holds one of each)
 *   EDGECTL_BENCH_ROUNDS    rounds (3)
 *   EDGECTL_BENCH_WARMUP    seconds between the site settling and sampling (120)
 *   EDGECTL_BENCH_BUNDLE    the bundle to measure (agent/testing/bundle/edgectl-agent.mjs)
 *   EDGECTL_BENCH_BASELINE  another bundle (an older build) measured in alternate rounds, for a
 *                           before/after under the same load
 *   EDGECTL_V8_FLAGS        node flags instead of the unit's ("" for none)
 *   EDGECTL_BENCH_ENV       environment instead of the unit's ("K=V K=V", "" for none)
 *   EDGECTL_BENCH_PROFILE   a directory: write each agent's CPU profile there (agents stop with
 *                           SIGTERM); the numbers include the profiler, so no report is written
 *   EDGECTL_BENCH_OUT       the report file (docs/benchmarks/agent.md); "-" prints it only
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { AgentStatus } from '../../agent/agent.ts';
import { formatRobotKeyFile, renderRobotKeyFile } from '../../agent/site-key.ts';
import { fetchStatus } from '../../cli/ops/status.ts';
import { createSite, destroySite, killGroup, spawnIn, type NetnsSite } from '../../lab/netns.ts';
import { fleetTiming } from '../../statecharts/timing.ts';

const PREFIX = 'edb-';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const names = ['r1', 'r2', 'r3', 'r4', 'r5', 'r6'];
const sampleSeconds = Number(process.env.EDGECTL_BENCH_SECONDS ?? 300);
const rounds = Number(process.env.EDGECTL_BENCH_ROUNDS ?? 3);
const warmSeconds = Number(process.env.EDGECTL_BENCH_WARMUP ?? 120);
const profileDir = process.env.EDGECTL_BENCH_PROFILE;
const out = process.env.EDGECTL_BENCH_OUT ?? 'docs/benchmarks/agent.md';
const runtime = process.env.EDGECTL_BENCH_RUNTIME ?? 'k3s';
if (runtime !== 'k3s' && runtime !== 'memory')
  throw new Error(`EDGECTL_BENCH_RUNTIME is k3s or memory, not ${runtime}`);
const CLK_TCK = 100;
const CHILD_SAMPLE_MS = 100;

/** unitRuntime reads the node flags and environment the systemd unit gives the agent. */
function unitRuntime(): { flags: string[]; env: Record<string, string> } {
  const unit = readFileSync(join(ROOT, 'templates/edgectl-agent.service'), 'utf8');
  const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(/\s+/);
  const flags = exec.slice(
    1,
    exec.findIndex((a) => a.endsWith('.mjs')),
  );
  const env: Record<string, string> = {};
  for (const m of unit.matchAll(/^Environment=(.*)$/gm))
    for (const kv of m[1]!.split(/\s+/).filter(Boolean))
      env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  return { flags, env };
}
const unit = unitRuntime();
const words = (s: string) => s.split(' ').filter(Boolean);
const V8_FLAGS =
  process.env.EDGECTL_V8_FLAGS === undefined ? unit.flags : words(process.env.EDGECTL_V8_FLAGS);
const ENV: Record<string, string> =
  process.env.EDGECTL_BENCH_ENV === undefined
    ? unit.env
    : Object.fromEntries(
        words(process.env.EDGECTL_BENCH_ENV).map((kv) => [
          kv.slice(0, kv.indexOf('=')),
          kv.slice(kv.indexOf('=') + 1),
        ]),
      );

const bundles = [
  {
    label: 'agent',
    path: process.env.EDGECTL_BENCH_BUNDLE ?? join(ROOT, 'agent/testing/bundle/edgectl-agent.mjs'),
  },
  ...(process.env.EDGECTL_BENCH_BASELINE
    ? [{ label: 'baseline', path: process.env.EDGECTL_BENCH_BASELINE }]
    : []),
];

/**
 * cpuTicks: the process's own CPU time, and that of the child processes it has waited for (the
 * site spec loader, the Kubernetes and snapshot helpers a leader starts): their work is the
 * agent's work, so the goal counts it.
 */
function cpuTicks(pid: number): { user: number; sys: number; children: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // utime, stime, cutime, cstime
  return { user: Number(rest[11]), sys: Number(rest[12]), children: Number(rest[13]) + Number(rest[14]) };
}
/** childPids: the live children of `pid` (the kernel's list for its main thread). */
function childPids(pid: number): number[] {
  try {
    return words(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')).map(Number);
  } catch {
    return [];
  }
}
/** rssMbIfAlive: a child's RSS, or null once it has exited. */
function rssMbIfAlive(pid: number): number | null {
  try {
    return rssMb(pid);
  } catch {
    return null;
  }
}
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The idle leader's traffic on the fleet profile: an Append to each other voter every heartbeat, answered every ANSWER_EVERY-th. */
const HEARTBEAT_MS = fleetTiming.heartbeatMs;
const ANSWER_EVERY = Math.max(1, Math.round(fleetTiming.ackIntervalMs / fleetTiming.heartbeatMs));
/** Datagrams an idle leader with 4 other voters and a learner sends and receives per second. */
const LEADER_DATAGRAMS_PER_S = Math.round(
  (1000 / HEARTBEAT_MS) * (4 + 4 / ANSWER_EVERY) + (1000 / fleetTiming.learnerHeartbeatMs) * 2,
);

/**
 * startFloor starts a bare Node process (the same flags and environment, no edgectl code) that sends
 * 4 datagrams every heartbeat to 4 sockets which echo every ANSWER_EVERY-th back: the leader's
 * traffic, on loopback. It warms up for `warmSeconds`, measures itself for `seconds`, and resolves to
 * its CPU and max RSS.
 */
function startFloor(warmSeconds: number, seconds: number): Promise<{ cpuPercent: number; rssMb: number }> {
  const script = `
    import { createSocket } from 'node:dgram';
    const peers = [];
    for (let i = 0; i < 4; i++) { const s = createSocket('udp4'); await new Promise((r) => s.bind(0, '127.0.0.1', r)); let n = 0; s.on('message', (m, ri) => { if (n++ % ${ANSWER_EVERY} === 0) s.send(m, ri.port, ri.address); }); peers.push(s); }
    const me = createSocket('udp4'); await new Promise((r) => me.bind(0, '127.0.0.1', r)); me.on('message', () => {});
    const buf = Buffer.alloc(120);
    setInterval(() => { for (const p of peers) me.send(buf, p.address().port, '127.0.0.1'); }, ${HEARTBEAT_MS});
    await new Promise((r) => setTimeout(r, ${warmSeconds * 1000}));
    const c0 = process.cpuUsage(); let rss = 0;
    for (let s = 0; s < ${seconds}; s++) { await new Promise((r) => setTimeout(r, 1000)); rss = Math.max(rss, process.memoryUsage().rss); }
    const c = process.cpuUsage(c0);
    console.log(JSON.stringify({ cpuPercent: ((c.user + c.system) / 1e6 / ${seconds}) * 100, rssMb: rss / 1048576 }));
    process.exit(0);`;
  const child = spawn(process.execPath, [...V8_FLAGS, '--input-type=module', '-e', script], {
    env: { ...process.env, ...ENV },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  return new Promise((resolve, reject) =>
    child.on('exit', (code) =>
      code === 0
        ? resolve(JSON.parse(text.trim()) as { cpuPercent: number; rssMb: number })
        : reject(new Error(`the floor exited ${code}`)),
    ),
  );
}

/** status reads an agent's /status, or null while it does not answer (starting, killed). */
const status = (address: string): Promise<AgentStatus | null> =>
  fetchStatus(`${address}:7947`, 1000).catch(() => null);

interface Row {
  node: string;
  role: 'leader (5 peers)' | 'follower' | 'learner';
  cpuPercent: number;
  userPercent: number;
  sysPercent: number;
  childPercent: number;
  rssAvgMb: number;
  rssMaxMb: number;
  /** Child processes seen during the window (sampled every CHILD_SAMPLE_MS), and the largest RSS one had. */
  childStarts: number;
  childRssMaxMb: number;
}
interface Round {
  bundle: string;
  round: number;
  rows: Row[];
  floor: { cpuPercent: number; rssMb: number };
}

/** runRound starts six fresh agents of `bundle`, waits until the site settles, and measures. */
async function runRound(
  site: NetnsSite,
  dir: string,
  bundle: { label: string; path: string },
  round: number,
): Promise<Round> {
  const procs = new Map<string, ChildProcess>();
  const work = join(dir, `${bundle.label}-${round}`);
  try {
    for (const r of site.robots) {
      mkdirSync(join(work, r.name), { recursive: true });
      const config = join(work, `${r.name}.yaml`);
      writeFileSync(
        config,
        stringify({
          site: { id: 'bench' },
          node: { id: r.name, serverCapable: r.name !== 'r6' },
          voters: names.slice(0, 5),
          // The learner: the site names its workers, and a leader takes no unnamed robot as one.
          workers: names.slice(5),
          profile: 'fleet',
          network: { interfaces: ['eth0'] },
          stateDir: join(work, r.name, 'state'),
          siteKeyFile: join(dir, `${r.name}.keys.json`),
          status: { listen: `${r.address}:7947` },
          controlPlane:
            runtime === 'k3s'
              ? {
                  runtime: 'k3s',
                  k3s: { nodeIp: r.address, flannelIface: 'eth0', serverCapable: r.name !== 'r6' },
                  siteSpecFile: join(dir, 'site.yaml'),
                  templatesDir: join(ROOT, 'templates'),
                  receivedSnapshotDir: join(work, r.name, 'snapshots'),
                }
              : { runtime: 'memory' },
          log: { level: 'warn' },
        }),
      );
      const prof = profileDir
        ? [`--cpu-prof`, `--cpu-prof-dir=${join(profileDir, `${bundle.label}-${round}-${r.name}`)}`]
        : [];
      procs.set(
        r.name,
        spawnIn(r.netns, process.execPath, [...V8_FLAGS, ...prof, bundle.path, '--config', config], {
          env: { ...process.env, ...ENV, EDGECTL_ROBOT_MODEL: '1' },
          logFile: openSync(join(work, `${r.name}.log`), 'a'),
        }),
      );
    }
    let leader: string | null = null;
    for (let i = 0; i < 300 && !leader; i++) {
      await sleep(200);
      const st = await Promise.all(site.robots.map((r) => status(r.address)));
      if (st.every((s) => s && (s.lifecycle === 'leading.serving' || s.lifecycle === 'following.ready')))
        leader = st.find((s) => s!.role === 'leader')!.node;
    }
    if (!leader) throw new Error(`the site did not settle (logs in ${work})`);
    // Idle means a robot that has run for a while: V8 optimizes a function once it has run a few hundred
    // times, which the heartbeat path takes a minute or more to reach. The floor warms up as long, and
    // both are measured in the same window.
    const floor = startFloor(warmSeconds, sampleSeconds);
    await sleep(warmSeconds * 1000);
    const follower = names.find((n) => n !== leader && n !== 'r6')!;
    const measured = [leader, follower, 'r6'];
    const pid = (n: string) => procs.get(n)!.pid!;
    const start = new Map(measured.map((n) => [n, cpuTicks(pid(n))]));
    const rss = new Map(measured.map((n) => [n, [] as number[]]));
    const children = new Map(measured.map((n) => [n, { seen: new Set<number>(), rssMaxMb: 0 }]));
    // A helper process lives for a fraction of a second: its RSS is read far more often than the agent's.
    for (let tick = 1; tick <= sampleSeconds * (1000 / CHILD_SAMPLE_MS); tick++) {
      await sleep(CHILD_SAMPLE_MS);
      for (const n of measured) {
        const c = children.get(n)!;
        for (const child of childPids(pid(n))) {
          c.seen.add(child);
          c.rssMaxMb = Math.max(c.rssMaxMb, rssMbIfAlive(child) ?? 0);
        }
        if (tick % (1000 / CHILD_SAMPLE_MS) === 0) rss.get(n)!.push(rssMb(pid(n)));
      }
    }
    const rows = measured.map((n): Row => {
      const end = cpuTicks(pid(n));
      const pct = (ticks: number) => (ticks / CLK_TCK / sampleSeconds) * 100;
      const userPercent = pct(end.user - start.get(n)!.user);
      const sysPercent = pct(end.sys - start.get(n)!.sys);
      const childPercent = pct(end.children - start.get(n)!.children);
      const r = rss.get(n)!;
      return {
        node: n,
        role: n === leader ? 'leader (5 peers)' : n === 'r6' ? 'learner' : 'follower',
        cpuPercent: userPercent + sysPercent + childPercent,
        userPercent,
        sysPercent,
        childPercent,
        childStarts: children.get(n)!.seen.size,
        childRssMaxMb: children.get(n)!.rssMaxMb,
        rssMaxMb: Math.max(...r),
        rssAvgMb: r.reduce((a, b) => a + b, 0) / r.length,
      };
    });
    return { bundle: bundle.label, round, rows, floor: await floor };
  } finally {
    for (const p of procs.values()) killGroup(p, profileDir ? 'SIGTERM' : 'SIGKILL');
    if (profileDir) await sleep(3000); // leadership transfer, then the profile is written
  }
}

const BEGIN = '<!-- bench:agent: generated, everything up to the end mark is rewritten by each run -->';
const END = '<!-- bench:agent: end of the generated part; what follows is kept -->';
/**
 * withGeneratedSection: the report file with this run's text in place of the last run's, and the
 * hand-written sections after the end mark (past runs, experiments, analysis) kept as they are.
 */
function withGeneratedSection(path: string, generated: string): string {
  let kept = '';
  try {
    const old = readFileSync(path, 'utf8');
    const at = old.indexOf(END);
    kept = at < 0 ? '' : old.slice(at + END.length);
  } catch {
    // No report yet: the generated part alone.
  }
  return `${BEGIN}\n${generated.trimEnd()}\n\n${END}${kept || '\n'}`;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** spread renders "median (min–max)" over the rounds. */
const spread = (xs: number[], digits: number) =>
  xs.length === 1
    ? xs[0]!.toFixed(digits)
    : `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;

const site = createSite(PREFIX, '10.77.8', names);
const dir = mkdtempSync(join(tmpdir(), 'edgectl-bench-'));
const results: Round[] = [];
try {
  // The site spec the k3s runtime's leader applies (to the robot model's object store).
  writeFileSync(join(dir, 'site.yaml'), 'id: bench\n');
  const master = randomBytes(32);
  for (const name of names)
    writeFileSync(
      join(dir, `${name}.keys.json`),
      formatRobotKeyFile(
        renderRobotKeyFile({
          master,
          site: 'bench',
          node: name,
          voters: names.slice(0, 5),
          send: 1,
          accept: [1],
        }),
      ),
      { mode: 0o600 },
    );
  for (let round = 1; round <= rounds; round++)
    for (const b of bundles) {
      const r = await runRound(site, dir, b, round);
      results.push(r);
      const lead = r.rows[0]!;
      process.stderr.write(
        `${b.label} round ${round}: leader ${lead.cpuPercent.toFixed(2)}% ${lead.rssMaxMb.toFixed(1)} MB; floor ${r.floor.cpuPercent.toFixed(2)}% ${r.floor.rssMb.toFixed(1)} MB\n`,
      );
    }
} finally {
  destroySite(PREFIX);
  rmSync(dir, { recursive: true, force: true });
}

const of = (label: string) => results.filter((r) => r.bundle === label);
const mine = of('agent');
const roleRows = (['leader (5 peers)', 'follower', 'learner'] as const).map((role) => {
  const rs = mine.map((r) => r.rows.find((x) => x.role === role)!);
  return `| ${role} | ${spread(
    rs.map((r) => r.cpuPercent),
    2,
  )} | ${spread(
    rs.map((r) => r.userPercent),
    2,
  )} | ${spread(
    rs.map((r) => r.sysPercent),
    2,
  )} | ${spread(
    rs.map((r) => r.childPercent),
    2,
  )} | ${spread(
    rs.map((r) => r.rssAvgMb),
    1,
  )} | ${spread(
    rs.map((r) => r.rssMaxMb),
    1,
  )} | ${spread(
    rs.map((r) => r.childStarts),
    0,
  )} | ${spread(
    rs.map((r) => r.childRssMaxMb),
    1,
  )} |`;
});
const leadCpu = mine.map((r) => r.rows[0]!.cpuPercent);
const leadRss = mine.map((r) => r.rows[0]!.rssMaxMb);
const floorCpu = mine.map((r) => r.floor.cpuPercent);
const floorRss = mine.map((r) => r.floor.rssMb);
// The floor runs in the same window as the agents, so it also gauges how fast this (shared, virtual)
// machine is at the time: the leader's CPU as a multiple of it compares runs made on different days.
const leaderOverFloor = (rounds: readonly Round[]) =>
  rounds.map((r) => r.rows[0]!.cpuPercent / r.floor.cpuPercent);
/** startupKiB: the bundle's entry plus the chunks it loads at start-up (static imports, transitively). */
function startupKiB(entry: string): string {
  const seen = new Set<string>([entry]);
  let bytes = 0;
  for (const file of seen) {
    const source = readFileSync(file, 'utf8');
    bytes += Buffer.byteLength(source);
    for (const m of source.matchAll(/(?:\bfrom|\bimport)\s*(["'])\.\/([^"'\\/\s]+\.m?js)\1/g))
      seen.add(join(dirname(file), m[2]!));
  }
  return (bytes / 1024).toFixed(0);
}
const baseline = of('baseline');
const env = Object.entries(ENV).map(([k, v]) => `${k}=${v}`);
const md = `# Agent footprint (idle)

Generated by \`npm run bench:agent\` on ${new Date().toISOString().slice(0, 10)}. Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'},
${os.cpus().length} cores, Node ${process.version}. Six real agents (the tests' entry, \`agent/testing/main.ts\`) in network namespaces on one
bridge, fleet profile (heartbeat ${HEARTBEAT_MS} ms, answered every ${fleetTiming.ackIntervalMs} ms), mDNS on; five voters and one learner. ${runtime === 'k3s' ? "The control plane is the robot's, the k3s runtime, over the robot model where k3s is absent (its plans run against the model; the leader's site reaches the model's API server through the robot's Kubernetes client child, agent/k3s/testing/model-api-server.ts)." : "The control plane is the in-memory twin (EDGECTL_BENCH_RUNTIME=memory), not the robot's."}
Each runs that entry bundled like the robot's (\`npm run build:test-agent\`: ${startupKiB(bundles[0]!.path)} KiB of JavaScript loaded at start-up, the entry and its static chunks) as the systemd unit runs it: node flags \`${V8_FLAGS.join(' ') || '(none)'}\`${env.length ? `, environment \`${env.join(' ')}\`` : ''}.
${rounds} rounds, each with fresh agents: after the site settled and ${warmSeconds} s more, each process was sampled from /proc
every second for ${sampleSeconds} s (its child processes every ${CHILD_SAMPLE_MS} ms: a helper the agent starts, such as the site spec
loader, counts in CPU and is listed with its largest RSS, but its memory is not the agent's idle RSS). Figures are the median over the rounds, with the lowest and highest in brackets.${runtime === 'k3s' ? "\nOver the model, the commands a robot runs (etcdctl, systemctl, k3s) are the model's, in the agent's process, and are not counted as processes: on a robot an idle leader also runs etcdctl to check its standby every 30 s and the standby runs it to read its replica's revision every 5 s, about 16 ms of CPU each (docs/k3s.md), 0.05% and 0.3% of a core." : ''}

| goal | result | measured |
| --- | --- | --- |
| idle RSS ≤ 60 MB (leader with 5 peers) | ${median(leadRss) <= 60 ? 'met' : '**missed**'} | max ${spread(leadRss, 1)} MB |
| idle CPU ≤ 1% of a core (leader with 5 peers) | ${median(leadCpu) <= 1 ? 'met' : '**missed**'} | ${spread(leadCpu, 2)}% |

| role | CPU (% of one core) | of which user | of which kernel | of which child processes | RSS avg MB | RSS max MB | child processes started | child RSS max MB |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
${roleRows.join('\n')}

The leader sends an Append to each of 4 other voters every ${HEARTBEAT_MS} ms and to the learner every ${fleetTiming.learnerHeartbeatMs} ms; a
follower answers a heartbeat every ${fleetTiming.ackIntervalMs} ms: about ${LEADER_DATAGRAMS_PER_S} authenticated datagrams per second in and out.

## The floor: Node.js itself

Measured in the same windows: a bare Node process with the same flags and environment, no edgectl
code, that sends 4 datagrams every ${HEARTBEAT_MS} ms to 4 sockets which echo every ${ANSWER_EVERY === 1 ? '' : `${ANSWER_EVERY === 2 ? 'other' : `${ANSWER_EVERY}th`} `}one back (the leader's
traffic pattern without the learner, on loopback): **${spread(floorCpu, 2)}% CPU, ${spread(floorRss, 1)} MB RSS**. The agent adds
${(median(leadRss) - median(floorRss)).toFixed(0)} MB and ${(median(leadCpu) - median(floorCpu)).toFixed(2)} points of CPU to it.
The floor also gauges how fast this machine is at the time (a shared virtual machine: the same floor
has taken nearly twice the CPU at one hour as at another), so runs made at different times are best
compared by the leader's CPU as a multiple of the floor's: **${spread(leaderOverFloor(mine), 2)}×** here.
${
  baseline.length
    ? `
## Before and after

The same run measured \`${relative(ROOT, bundles[1]!.path)}\` (the earlier build) in alternate rounds:
leader **${spread(
        baseline.map((r) => r.rows[0]!.cpuPercent),
        2,
      )}% CPU, ${spread(
        baseline.map((r) => r.rows[0]!.rssMaxMb),
        1,
      )} MB RSS** (max), floor ${spread(
        baseline.map((r) => r.floor.cpuPercent),
        2,
      )}%; the leader at ${spread(leaderOverFloor(baseline), 2)}× the floor.
`
    : ''
}`;
if (profileDir)
  process.stdout.write(`CPU profiles in ${profileDir}; no report written (the profiler adds CPU)\n`);
else {
  if (out !== '-') {
    mkdirSync(join(ROOT, 'docs/benchmarks'), { recursive: true });
    writeFileSync(join(ROOT, out), withGeneratedSection(join(ROOT, out), md));
  }
  process.stdout.write(md);
}
