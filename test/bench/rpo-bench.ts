/**
 * `npm run bench:rpo` (root): what a leader's power loss costs in acknowledged writes, with
 * continuous replication and with snapshots only, in the same run (docs/benchmarks/rpo.md).
 *
 * A 3-robot lab (3 voters) per mode. Each trial: wait for one leader with every robot Ready and a
 * standby replica caught up (replication mode), write a ConfigMap every 100 ms through the leader
 * for WRITE_MS, apply the condition, power the leader off, stop the writer, wait for a new leader
 * serving, count the acknowledged writes missing on it, then power the old leader back on and let
 * the site re-form before the next trial. Conditions: clean; 10% loss on every link from the start
 * of the writes; burst: the leader's Wi-Fi drops for 1.5 s right before the power loss (the lab's
 * `isolate`: a robot's burst cuts all of its traffic, the client's too, since the client reaches
 * the leader's API over the same site network); cut: only the link between the leader and its
 * standby drops for 1.5 s right before the power loss, while the client still reaches the leader
 * (what a client running on the leader robot itself sees during the leader's burst).
 *
 *   node test/bench/rpo-bench.ts [--runs N] [--baseline-runs N] [--conditions clean,loss,burst,cut] [--out file]
 */
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { converged } from '../../lab/analysis.ts';
import {
  applyLabFault,
  labDown,
  labUp,
  observeLab,
  type LabObservation,
  type LabState,
} from '../../lab/lab.ts';
import { requireRoot } from '../../lab/netns.ts';
import { labApi, lostWrites, presentWrites, Writer } from '../../lab/rpo.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10' },
    'baseline-runs': { type: 'string', default: '5' },
    conditions: { type: 'string', default: 'clean,loss,burst,cut' },
    out: { type: 'string', default: 'docs/benchmarks/rpo.md' },
  },
});
const RUNS = Number(values.runs);
const BASELINE_RUNS = Number(values['baseline-runs']);
const CONDITIONS = values.conditions!.split(',') as Condition[];
const WRITE_MS = 4000;
const SNAPSHOT_INTERVAL_MS = 5000;
type Condition = 'clean' | 'loss' | 'burst' | 'cut';
const BURST_MS = 1500;

interface Trial {
  readonly mode: 'replication' | 'snapshots';
  readonly condition: Condition;
  readonly acked: number;
  readonly lost: number;
  readonly windowMs: number;
  readonly takeoverMs: number | null;
  /**
   * Power loss to the first observation of a new leader of a higher term (the election and the
   * agents' status round), ms: the rest of takeoverMs is the fence delay and the server's start.
   */
  readonly electedMs: number | null;
  /** The new leader's start, step by step, ms (lab/runtime/lab-control-plane.ts StartSteps). */
  readonly startSteps: Readonly<Record<string, number | null>> | null;
  readonly source: string;
  /** The new leader's restored revision moved forward ("from->to"), or null (one history). */
  readonly revisionBump: string | null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(
  state: LabState,
  pred: (o: LabObservation) => boolean,
  ms: number,
): Promise<LabObservation> {
  const end = Date.now() + ms;
  for (;;) {
    const o = await observeLab(state, 500);
    if (pred(o)) return o;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(100);
  }
}

const details = (o: LabObservation, name: string) =>
  o.robots.find((r) => r.name === name)?.status?.controlPlane.details ?? {};

async function trial(state: LabState, mode: Trial['mode'], condition: Condition, n: number): Promise<Trial> {
  const formed = await until(state, (o) => converged(o) && o.robots.every((r) => r.status !== null), 120_000);
  const leader = formed.leader!;
  const others = state.robots.map((r) => r.name).filter((x) => x !== leader);
  // The standby: the follower whose replica follows this epoch.
  const standbyIn = (o: LabObservation) =>
    others.find((f) => String(details(o, f)['replica'] ?? '').startsWith(`e${o.term}@`)) ?? null;
  const standby =
    mode === 'replication' ? standbyIn(await until(state, (o) => standbyIn(o) !== null, 60_000)) : null;
  const ns = `site-${state.site}`;
  const writer = new Writer(labApi(state, leader), ns, `t${n}`, 100);
  if (condition === 'loss')
    for (const a of state.robots)
      for (const b of state.robots)
        if (a !== b) await applyLabFault(state, { kind: 'drop', from: a.name, to: b.name, rate: 0.1 });
  const burst = condition === 'burst' || condition === 'cut';
  await sleep(burst ? WRITE_MS - BURST_MS : WRITE_MS);
  if (burst) {
    // The fault ends right before the power loss: what the leader acknowledged during it, and
    // anything it acknowledges in the moment after (a retried request), reaches the standby only
    // if replication catches up first.
    if (condition === 'cut' && !standby) throw new Error(`${leader} has no standby to cut`);
    await applyLabFault(
      state,
      condition === 'burst' ? { kind: 'isolate', node: leader } : { kind: 'cut', a: leader, b: standby! },
    );
    await sleep(BURST_MS);
    await applyLabFault(state, { kind: 'heal' });
  }
  const cutAt = Date.now();
  await applyLabFault(state, { kind: 'kill', node: leader });
  await writer.stop();
  let takeoverMs: number | null = null;
  let electedMs: number | null = null;
  let next: string | null = null;
  try {
    const o = await until(
      state,
      (x) => {
        if (electedMs === null && x.leader !== null && x.leader !== leader && x.term > formed.term)
          electedMs = x.t - cutAt;
        return x.robots.some(
          (r) =>
            r.name !== leader &&
            r.status?.controlPlane.server?.state === 'serving' &&
            r.status.controlPlane.server.epoch > formed.term,
        );
      },
      60_000,
    );
    takeoverMs = o.t - cutAt;
    next = o.robots.find(
      (r) => r.name !== leader && r.status?.controlPlane.server?.state === 'serving',
    )!.name;
  } catch {
    // no takeover within a minute: recorded as such
  }
  let lost = writer.acked.length;
  let windowMs = Infinity;
  let source = 'none';
  let revisionBump: string | null = null;
  let startSteps: Trial['startSteps'] = null;
  if (next) {
    await applyLabFault(state, { kind: 'heal' });
    const present = await presentWrites(labApi(state, next, 5000), ns, `t${n}`);
    const loss = lostWrites(writer.acked, present, cutAt);
    lost = loss.lost.length;
    windowMs = loss.windowMs;
    const d = details(await observeLab(state), next);
    source = String(d['restoredFrom'] ?? 'empty');
    revisionBump = typeof d['revisionBump'] === 'string' ? d['revisionBump'] : null;
    startSteps = Object.fromEntries(
      Object.entries(d)
        .filter(([k]) => k.startsWith('start.'))
        .map(([k, v]) => [k.slice('start.'.length), typeof v === 'number' ? v : null]),
    );
  }
  await applyLabFault(state, { kind: 'heal' });
  await applyLabFault(state, { kind: 'restart', node: leader });
  const t: Trial = {
    mode,
    condition,
    acked: writer.acked.length,
    lost,
    windowMs,
    takeoverMs,
    electedMs,
    startSteps,
    source,
    revisionBump,
  };
  console.error(JSON.stringify(t));
  return t;
}

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

async function runMode(
  mode: Trial['mode'],
  runs: number,
  conditions: readonly Condition[],
): Promise<Trial[]> {
  const site = mode === 'replication' ? 'rpo-repl' : 'rpo-snap';
  labDown(site, { prefix: 'erp-' });
  const state = await labUp({
    site,
    robots: 3,
    voters: 3,
    runtime: 'apiserver',
    node: 'lite',
    seed: 1,
    prefix: 'erp-',
    subnet: '10.77.24',
    deadAfterMs: 3000,
    snapshotIntervalMs: SNAPSHOT_INTERVAL_MS,
    replication: mode === 'replication',
  });
  const out: Trial[] = [];
  try {
    for (const c of conditions)
      for (let i = 0; i < runs; i++) out.push(await trial(state, mode, c, out.length));
  } finally {
    labDown(site, { prefix: 'erp-' });
  }
  return out;
}

function render(trials: readonly Trial[]): string {
  const rows: string[] = [];
  const groups = new Map<string, Trial[]>();
  for (const t of trials) {
    const k = `${t.mode}|${t.condition}`;
    groups.set(k, [...(groups.get(k) ?? []), t]);
  }
  for (const [k, ts] of groups) {
    const [mode, condition] = k.split('|');
    const lost = ts.map((t) => t.lost);
    const win = ts.map((t) => t.windowMs);
    const take = ts.flatMap((t) => (t.takeoverMs === null ? [] : [t.takeoverMs]));
    const fromReplica = ts.filter((t) => t.source.startsWith('replica')).length;
    const bumped = ts.filter((t) => t.revisionBump !== null).length;
    rows.push(
      `| ${mode} | ${condition} | ${ts.length} | ${Math.round(ts.reduce((a, t) => a + t.acked, 0) / ts.length)} | ` +
        `${pct(lost, 50)} / ${pct(lost, 99)} / ${Math.max(...lost)} | ${pct(win, 50)} / ${pct(win, 99)} | ` +
        `${(pct(take, 50) / 1000).toFixed(1)} / ${(pct(take, 99) / 1000).toFixed(1)} | ${fromReplica} of ${ts.length} | ${bumped} of ${ts.length} |`,
    );
  }
  return [
    '| datastore | condition | runs | acked writes (mean) | lost writes p50 / p99 / max | lost window ms p50 / p99 | takeover s p50 / p99 | took over from a replica | revision moved forward |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

requireRoot('bench:rpo');
const trials = [
  ...(RUNS > 0 ? await runMode('replication', RUNS, CONDITIONS) : []),
  ...(BASELINE_RUNS > 0 ? await runMode('snapshots', BASELINE_RUNS, ['clean']) : []),
];
const table = render(trials);
console.log(table);
writeFileSync(values.out!.replace(/\.md$/, '.json'), JSON.stringify(trials, null, 2) + '\n');
writeFileSync(
  values.out!,
  `# RPO of a leader's power loss (\`npm run bench:rpo\`)

Generated by test/bench/rpo-bench.ts on ${new Date().toISOString().slice(0, 10)}; the raw trials are in ${basename(values.out!).replace(/\.md$/, '.json')}.
A 3-robot lab (3 voters, lab timing profile, etcd 3.4); a client writes a ConfigMap every 100 ms
through the leader's API for ${WRITE_MS / 1000} s, then the leader loses power (SIGKILL of everything it
runs). *Lost writes* are writes the old leader acknowledged (HTTP 201) that are missing on the new
leader; the *lost window* is how long before the power loss the oldest of them was acknowledged.
*Takeover* is power loss to a new leader serving (its API server ready), observed every ~100 ms.
Conditions: *clean*; *loss*: 10% loss on every link between robots (both directions), from the
first write; *burst*: the leader's Wi-Fi drops for ${BURST_MS / 1000} s right before the power loss (\`isolate\`:
all of its traffic, the client's included); *cut*: only the link between the leader and its standby
drops for ${BURST_MS / 1000} s right before the power loss, the client still reaching the leader. *snapshots* is
the datastore without replication (the leader snapshots every ${SNAPSHOT_INTERVAL_MS / 1000} s, as the lab did before).

${table}
`,
);
