/**
 * `npm run bench:lab` (root): failover of a real 5-robot lab site (docs/benchmarks/lab.md). Twenty
 * times, the leader loses power (SIGKILL of its agent, kube-apiserver and etcd); the run measures,
 * from the agents' own log times, detection, the new leader, the new API server ready and every
 * survivor Ready on it; then the robot is powered on again and the site re-converges before the
 * next round. kube-apiserver's own cold start (process start to /readyz) is measured in the same
 * run, by every new leader, as the floor.
 *
 * It runs two sites in turn: five voters, and two robots with a witness (the witness never leads,
 * so every round kills one of the two robots). The two-robot site must meet the same goals.
 *
 * Goals: new leader p50 ≤ 2 s; all survivors Ready on the new server p50 ≤ 20 s.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  converged,
  parseAgentLog,
  stepDurations,
  type FaultEvent,
  type RunRecord,
} from '../../lab/analysis.ts';
import { applyLabFault, labDown, labUp, leftovers, observeLab, type LabObservation } from '../../lab/lab.ts';
import { KUBE_VERSION } from '../../lab/kube-apiserver/apiserver.ts';

const ROUNDS = Number(process.env['EDGECTL_BENCH_ROUNDS'] ?? 20);
const SITE = 'bench';
const PREFIX = 'elb-';
const OUT = fileURLToPath(new URL('../../docs/benchmarks/', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(
  pred: (o: LabObservation) => boolean,
  ms: number,
  state: Parameters<typeof observeLab>[0],
) {
  const end = Date.now() + ms;
  for (;;) {
    const o = await observeLab(state);
    if (pred(o)) return o;
    if (Date.now() > end) throw new Error('timed out waiting for the site to converge');
    await sleep(100);
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

interface Shape {
  readonly name: string;
  readonly robots: number;
  readonly voters: number;
  readonly witnesses: number;
}

const SHAPES: readonly Shape[] = [
  { name: '5 voters', robots: 5, voters: 5, witnesses: 0 },
  { name: '2 robots + 1 witness', robots: 2, voters: 2, witnesses: 1 },
];

async function runShape(shape: Shape) {
  labDown(SITE, { prefix: PREFIX });
  const started = Date.now();
  const state = await labUp({
    site: SITE,
    robots: shape.robots,
    voters: shape.voters,
    witnesses: shape.witnesses,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: PREFIX,
    subnet: '10.77.10',
  });
  const faults: FaultEvent[] = [];
  try {
    let o = await until(converged, 120_000, state);
    const formedMs = Date.now() - started;
    console.error(`formed in ${(formedMs / 1000).toFixed(1)} s; ${ROUNDS} leader power losses follow`);
    for (let i = 0; i < ROUNDS; i++) {
      const leader = o.leader!;
      const t = Date.now();
      await applyLabFault(state, { kind: 'kill', node: leader }, { leader });
      faults.push({
        t,
        stepId: `off${i + 1}`,
        text: 'power-off leader',
        applied: [`kill:${leader}`],
        robots: [leader],
        leaderBefore: leader,
        termBefore: o.term,
      });
      // Survivors re-form: a new leader serving, every other powered robot Ready on it.
      await until((x) => converged(x) && x.leader !== leader && x.term > o.term, 120_000, state);
      await applyLabFault(state, { kind: 'restart', node: leader });
      faults.push({
        t: Date.now(),
        stepId: `on${i + 1}`,
        text: 'power-on',
        applied: [`restart:${leader}`],
        robots: [leader],
        leaderBefore: null,
        termBefore: 0,
      });
      o = await until((x) => converged(x) && x.robots.every((r) => r.status !== null), 120_000, state);
      // Let the returned robot's kubelet settle so the next round starts from a steady site.
      await sleep(2000);
      o = await until(converged, 60_000, state);
      console.error(`round ${i + 1}: ${leader} -> ${o.leader} (term ${o.term})`);
    }
    const logs: RunRecord['logs'] = Object.fromEntries(
      state.robots.map((r) => [
        r.name,
        parseAgentLog(r.name, readFileSync(join(state.dir, 'robots', r.name, 'agent.log'), 'utf8')),
      ]),
    );
    const rec: RunRecord = {
      robots: state.robots.map((r) => r.name),
      voters: state.robots.filter((r) => r.voter || r.witness).map((r) => r.name),
      witnesses: state.robots.filter((r) => r.witness).map((r) => r.name),
      t0: started,
      tEnd: Date.now(),
      faults,
      observations: [],
      logs,
      final: null,
    };
    const d = faults.filter((f) => f.stepId.startsWith('off')).map((f) => stepDurations(rec, f));
    // kube-apiserver's cold start, as logged by every leader that started one in this run.
    const coldStarts = state.robots.flatMap((r) =>
      readFileSync(join(state.dir, 'robots', r.name, 'agent.log'), 'utf8')
        .split('\n')
        .filter((l) => l.includes('"coldStartMs"'))
        .map((l) => (JSON.parse(l) as { coldStartMs: number }).coldStartMs),
    );
    const series = {
      detection: d.map((x) => x.detectionMs!),
      newLeader: d.map((x) => x.electionMs!),
      apiServerReady: d.map((x) => x.controlPlaneReadyMs!),
      allSurvivorsReady: d.map((x) => x.allReadyMs!),
      apiServerColdStart: coldStarts,
    };
    for (const [k, v] of Object.entries(series))
      if (v.some((x) => x === null || !Number.isFinite(x)))
        throw new Error(`a round has no ${k} measurement`);
    const stat = (v: number[]) => ({
      p50: pct(v, 50),
      p99: pct(v, 99),
      min: Math.min(...v),
      max: Math.max(...v),
      n: v.length,
    });
    return {
      shape,
      formedMs,
      results: Object.fromEntries(Object.entries(series).map(([k, v]) => [k, stat(v)])) as Record<
        string,
        ReturnType<typeof stat>
      >,
      series,
    };
  } finally {
    labDown(SITE, { prefix: PREFIX });
    const left = leftovers(SITE, PREFIX);
    if (left.netns.length + left.links.length + left.nftTables.length + left.processes.length)
      console.error(`lab down left: ${JSON.stringify(left)}`);
  }
}

async function main(): Promise<void> {
  const runs = [];
  for (const shape of SHAPES) {
    console.error(`--- ${shape.name}`);
    runs.push(await runShape(shape));
  }
  const when = new Date().toISOString();
  const machine = {
    cpus: os.cpus().length,
    model: os.cpus()[0]?.model ?? '?',
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    kernel: os.release(),
  };
  const versions = {
    node: process.version,
    kubeApiserver: KUBE_VERSION,
    etcd: execFileSync('etcd', ['--version'], { encoding: 'utf8' }).split('\n')[0],
  };
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const md = [
    '# Benchmark: lab failover (real agents, real kube-apiserver + etcd)',
    '',
    `\`npm run bench:lab\` (root), ${when}. ${ROUNDS} leader power losses on each of two lab sites, one after the other: five voters, and two robots with a witness (its own namespace; it votes and never leads). Lab timing profile: heartbeat 50 ms, election timeout 900–1100 ms. Each round SIGKILLs the leader's agent with its kube-apiserver and etcd; the survivors elect a new leader, which starts a new kube-apiserver + etcd and applies the site; every survivor's lab kubelet registers its Node and Lease on it. Times are from the fault to the agents' own log lines (ms precision).`,
    '',
    `Machine: ${machine.cpus} CPUs (${machine.model}), ${machine.memGiB} GiB, Linux ${machine.kernel}. Node ${versions.node}, kube-apiserver ${KUBE_VERSION} (built from the Go module proxy), ${versions.etcd}.`,
    '',
  ];
  for (const run of runs) {
    const r = run.results;
    const floor = r['apiServerColdStart']!.p50;
    const row = (name: string, k: string) =>
      `| ${name} | ${s(r[k]!.p50)} | ${s(r[k]!.p99)} | ${s(r[k]!.min)} | ${s(r[k]!.max)} | ${(r[k]!.p50 / floor).toFixed(2)}× |`;
    md.push(
      `## ${run.shape.name}`,
      '',
      "| from the leader's power loss to … | p50 | p99 | min | max | p50 / apiserver cold start |",
      '| --- | --- | --- | --- | --- | --- |',
      row('detection (a survivor starts an election)', 'detection'),
      row('new leader', 'newLeader'),
      row('new API server ready (/readyz)', 'apiServerReady'),
      row('all survivors Ready on the new server', 'allSurvivorsReady'),
      '',
      `Floor: kube-apiserver's own cold start (process start to /readyz, measured by each new leader in this run): p50 ${s(floor)}, p99 ${s(r['apiServerColdStart']!.p99)} (n = ${r['apiServerColdStart']!.n}).`,
      '',
    );
  }
  md.push(
    '## Goals',
    '',
    '| site | goal | target | measured p50 | met |',
    '| --- | --- | --- | --- | --- |',
    ...runs.flatMap((run) => [
      `| ${run.shape.name} | new leader | ≤ 2 s | ${s(run.results['newLeader']!.p50)} | ${run.results['newLeader']!.p50 <= 2000 ? 'yes' : 'no'} |`,
      `| ${run.shape.name} | all survivors Ready on the new server | ≤ 20 s | ${s(run.results['allSurvivorsReady']!.p50)} | ${run.results['allSurvivorsReady']!.p50 <= 20_000 ? 'yes' : 'no'} |`,
    ]),
    '',
    "Where the time goes: detection is the election timeout (no heartbeat for 900–1100 ms); the election itself takes a few ms (PreVote, then one vote round). Most of the rest is the new leader restoring the newest shipped snapshot (etcdctl snapshot restore) and starting etcd and kube-apiserver (the floor above). Workers retry their join with a backoff capped at 2 s while the server starts, which is most of the gap between /readyz and all survivors Ready. The API port is the agent's fenced front door (docs/protocol.md §5). With two robots and a witness the survivor is the only robot left, so 'all survivors Ready' is the new leader serving and Ready on its own server.",
    '',
    `Reproduce: \`sudo npm run bench:lab\` (EDGECTL_BENCH_ROUNDS=${ROUNDS}). Raw numbers: \`docs/benchmarks/lab.json\`.`,
    '',
  );
  const text = md.join('\n');
  writeFileSync(
    join(OUT, 'lab.json'),
    `${JSON.stringify({ when, machine, versions, profile: 'lab', rounds: ROUNDS, goals: { newLeaderP50Ms: 2000, allSurvivorsReadyP50Ms: 20_000 }, sites: runs }, null, 2)}\n`,
  );
  writeFileSync(join(OUT, 'lab.md'), text);
  console.log(text);
}

await main();
