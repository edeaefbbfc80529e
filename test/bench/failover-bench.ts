/**
 * `npm run bench:failover` (root): edgectl against etcd, side by side, on the same lab topology with
 * the same fault schedules, in one run (docs/benchmarks/failover.md).
 *
 * Systems, each with 5 members on 5 robot namespaces joined by a bridge:
 * - edgectl: the real lab (prefix elf-, 10.77.50.0/24), 5 voters, fleet profile, lab control plane;
 * - etcd-default: a 5-member Debian etcd at 100 ms / 1000 ms (prefix elg-, 10.77.51.0/24);
 * - etcd-k3s: the same at k3s's embedded-etcd timings, 500 ms / 5000 ms (same namespaces, other ports).
 *
 * Schedules: leader power loss × EDGECTL_BENCH_ROUNDS (20); leader Wi-Fi loss of 1, 3 and 10 s ×
 * EDGECTL_BENCH_WIFI_ROUNDS (5) each, one system at a time with the others stopped; then 10 % loss
 * with 1.5 s bursts every 20 s for EDGECTL_BENCH_LOSS_SECONDS (600) on all three at once, after a
 * control window of EDGECTL_BENCH_CONTROL_SECONDS (60) without faults.
 *
 * EDGECTL_BENCH_SYSTEMS and EDGECTL_BENCH_SCHEDULES (comma lists) run a part; EDGECTL_BENCH_OUT
 * writes the report elsewhere (development runs); EDGECTL_BENCH_ETCD_PREVOTE=0 runs etcd without
 * --pre-vote; EDGECTL_BENCH_KEEP=1 keeps etcd's logs in EDGECTL_BENCH_DIR. Everything the run makes is removed at the end, also on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KUBE_VERSION } from '../../lab/kube-apiserver/apiserver.ts';
import { leftovers } from '../../lab/lab.ts';
import { createSite, destroySite, listOwned, requireRoot } from '../../lab/netns.ts';
import { nftTableName } from '../../lab/nft.ts';
import { EdgectlLab } from './failover/edgectl-lab.ts';
import { EtcdCluster, etcdVersion } from './failover/etcd-cluster.ts';
import { BridgeFaults } from './failover/net.ts';
import {
  renderMarkdown,
  summarise,
  type FailoverResult,
  type JudgedRound,
  type SystemInfo,
} from './failover/report.ts';
import {
  judgeLoss,
  judgeRound,
  lossWindow,
  powerLossRounds,
  wifiRounds,
  type Loss,
  type RawRound,
  type ScheduleOptions,
} from './failover/schedules.ts';
import type { FailoverSystem, SystemId } from './failover/system.ts';

const num = (k: string, d: number) => {
  const v = Number(process.env[k] ?? d);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${k}=${process.env[k]}: use a number ≥ 0`);
  return v;
};
const list = <T extends string>(k: string, all: readonly T[]): T[] => {
  const v = (process.env[k] ?? all.join(',')).split(',').filter(Boolean);
  const bad = v.filter((x) => !all.includes(x as T));
  if (bad.length) throw new Error(`${k}: unknown ${bad.join(', ')}; use some of ${all.join(', ')}`);
  return v as T[];
};

const POWER_ROUNDS = num('EDGECTL_BENCH_ROUNDS', 20);
const WIFI_ROUNDS = num('EDGECTL_BENCH_WIFI_ROUNDS', 5);
const WIFI_OUTAGES_MS = [1000, 3000, 10_000];
const LOSS_SECONDS = num('EDGECTL_BENCH_LOSS_SECONDS', 600);
const CONTROL_SECONDS = num('EDGECTL_BENCH_CONTROL_SECONDS', 60);
const LOSS_RATE = 0.1;
const BURST_MS = 1500;
const BURST_EVERY_MS = 20_000;
const SYSTEMS = list<SystemId>('EDGECTL_BENCH_SYSTEMS', ['edgectl', 'etcd-default', 'etcd-k3s']);
const SCHEDULES = list('EDGECTL_BENCH_SCHEDULES', ['power', 'wifi', 'loss'] as const);
const PRE_VOTE = process.env['EDGECTL_BENCH_ETCD_PREVOTE'] !== '0';
const LAB = { site: 'fover', prefix: 'elf-', subnet: '10.77.50' };
const ETCD_PREFIX = 'elg-';
const ETCD_SUBNET = '10.77.51';
const ROBOTS = ['r1', 'r2', 'r3', 'r4', 'r5'];
const DIR = process.env['EDGECTL_BENCH_DIR'] ?? '/var/lib/edgectl/failover-bench';
const OUT =
  process.env['EDGECTL_BENCH_OUT'] ?? fileURLToPath(new URL('../../docs/benchmarks/', import.meta.url));

const started = Date.now();
const opts: ScheduleOptions = {
  pollMs: 50,
  settleTimeoutMs: 120_000,
  restMs: 2000,
  log: (line) => console.error(`[${((Date.now() - started) / 60_000).toFixed(1)} min] ${line}`),
};

/** Processes that name the benchmark's directory on their command line (etcd's --data-dir). */
function strays(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(`${DIR}/`) && Number(pid) !== process.pid)
        out.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** cleanup removes everything a run makes (synchronous, so Ctrl-C can run it too). */
function cleanup(): void {
  destroySite(ETCD_PREFIX); // SIGKILLs every process in the etcd namespaces
  try {
    execFileSync('nft', ['delete', 'table', 'bridge', nftTableName(ETCD_PREFIX)], { stdio: 'ignore' });
  } catch {
    // no table
  }
  EdgectlLab.downStale(LAB);
  for (const pid of strays()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  if (process.env['EDGECTL_BENCH_KEEP'] !== '1') rmSync(DIR, { recursive: true, force: true });
}

function leaks(): string[] {
  const lab = leftovers(LAB.site, LAB.prefix);
  const etcd = listOwned(ETCD_PREFIX);
  const tables = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.trim().endsWith(` ${nftTableName(ETCD_PREFIX)}`));
  return [
    ...lab.netns,
    ...lab.links,
    ...lab.nftTables,
    ...lab.processes.map((p) => `pid ${p}`),
    ...etcd.netns,
    ...etcd.links,
    ...tables,
    ...strays().map((p) => `pid ${p}`),
  ];
}

const info = (s: FailoverSystem): SystemInfo => ({
  id: s.id,
  description: s.description,
  heartbeatMs: s.heartbeatMs,
  electionTimeoutMs: s.electionTimeoutMs,
  electionTimeoutMaxMs: s.electionTimeoutMaxMs,
});

/** targeted runs the power and Wi-Fi schedules against one system. */
async function targeted(sys: FailoverSystem): Promise<RawRound[]> {
  const raws: RawRound[] = [];
  if (SCHEDULES.includes('power') && POWER_ROUNDS > 0)
    raws.push(...(await powerLossRounds(sys, POWER_ROUNDS, opts)));
  if (SCHEDULES.includes('wifi') && WIFI_ROUNDS > 0)
    for (const ms of WIFI_OUTAGES_MS) raws.push(...(await wifiRounds(sys, ms, WIFI_ROUNDS, opts)));
  return raws;
}

async function main(): Promise<void> {
  requireRoot('npm run bench:failover');
  cleanup(); // a crashed earlier run
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true, mode: 0o700 });
  const rounds: JudgedRound[] = [];
  const losses: Loss[] = [];
  const systems: FailoverSystem[] = [];
  let lab: EdgectlLab | null = null;
  const clusters: EtcdCluster[] = [];
  let bridge: BridgeFaults | null = null;
  const wantTargeted = SCHEDULES.includes('power') || SCHEDULES.includes('wifi');
  const wantLoss = SCHEDULES.includes('loss') && LOSS_SECONDS > 0;

  if (SYSTEMS.includes('edgectl')) {
    opts.log('edgectl: lab up (5 robots, 5 voters), switching the agents to the fleet profile');
    lab = await EdgectlLab.up(LAB);
    systems.push(lab);
    if (wantTargeted) {
      const raws = await targeted(lab);
      const logs = lab.logs();
      const events = lab.events();
      for (const raw of raws) {
        const r = judgeRound(raw, events, lab.electionTimeoutMs);
        const d = r.newLeaderMs !== null ? lab.durations(raw.t, raw.victim, raw.termBefore, logs) : null;
        rounds.push({
          ...r,
          apiServerReadyMs: d?.controlPlaneReadyMs ?? null,
          survivorsReadyMs: d?.allReadyMs ?? null,
        });
      }
    }
    // The etcd clusters run on a quiet machine; the site comes back for the loss schedule.
    if (SYSTEMS.some((s) => s !== 'edgectl')) await lab.powerOffAll();
  }

  const etcdIds = SYSTEMS.filter((s): s is 'etcd-default' | 'etcd-k3s' => s !== 'edgectl');
  if (etcdIds.length) {
    const site = createSite(ETCD_PREFIX, ETCD_SUBNET, ROBOTS);
    bridge = new BridgeFaults(site);
    for (const id of etcdIds) {
      const k3s = id === 'etcd-k3s';
      const c = new EtcdCluster({
        id,
        site,
        dir: join(DIR, id),
        heartbeatMs: k3s ? 500 : 100,
        electionMs: k3s ? 5000 : 1000,
        clientPort: k3s ? 12379 : 2379,
        peerPort: k3s ? 12380 : 2380,
        preVote: PRE_VOTE,
      });
      clusters.push(c);
      systems.push(c);
      if (!wantTargeted) continue;
      opts.log(`${id}: starting (${c.description})`);
      c.start();
      const raws = await targeted(c);
      const events = c.events();
      rounds.push(...raws.map((raw) => judgeRound(raw, events, c.electionTimeoutMs)));
      await c.stop();
    }
  }

  if (wantLoss) {
    opts.log('loss schedule: every system at once');
    if (lab && SYSTEMS.some((s) => s !== 'edgectl')) await lab.powerOnAll();
    for (const c of clusters) c.start();
    const raw = await lossWindow(
      systems,
      [...(lab ? [lab] : []), ...(bridge ? [bridge] : [])],
      {
        rate: LOSS_RATE,
        burstMs: BURST_MS,
        burstEveryMs: BURST_EVERY_MS,
        lossMs: LOSS_SECONDS * 1000,
        controlMs: CONTROL_SECONDS * 1000,
      },
      opts,
    );
    for (const s of systems) losses.push(judgeLoss(s.id, raw, s.events()));
  }
  await Promise.all(clusters.map((c) => c.stop()));

  const result: FailoverResult = {
    when: new Date().toISOString(),
    durationMs: Date.now() - started,
    machine: {
      cpus: os.cpus().length,
      model: os.cpus()[0]?.model ?? '?',
      memGiB: Math.round(os.totalmem() / 2 ** 30),
      kernel: os.release(),
    },
    versions: { node: process.version, etcd: etcdVersion(), kubeApiserver: KUBE_VERSION },
    config: {
      powerRounds: SCHEDULES.includes('power') ? POWER_ROUNDS : 0,
      wifiRounds: SCHEDULES.includes('wifi') ? WIFI_ROUNDS : 0,
      wifiOutagesMs: WIFI_OUTAGES_MS,
      lossSeconds: wantLoss ? LOSS_SECONDS : 0,
      controlSeconds: wantLoss ? CONTROL_SECONDS : 0,
      lossRate: LOSS_RATE,
      burstMs: BURST_MS,
      burstEveryMs: BURST_EVERY_MS,
      pollMs: opts.pollMs,
      etcdPreVote: PRE_VOTE,
      lossTogether: true,
    },
    systems: systems.map(info),
    rounds,
    loss: losses,
  };
  const summary = summarise(result);
  const md = renderMarkdown(result, summary);
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, 'failover.json'), `${JSON.stringify({ ...result, summary }, null, 2)}\n`);
  writeFileSync(join(OUT, 'failover.md'), md);
  console.log(md);
}

process.once('SIGINT', () => {
  console.error('interrupted: cleaning up');
  cleanup();
  process.exit(130);
});

try {
  await main();
} finally {
  cleanup();
  const left = leaks();
  if (left.length) {
    console.error(`left behind: ${left.join(', ')}`);
    process.exitCode = 1;
  }
}
