/**
 * The failover benchmark's figures and its report (docs/benchmarks/failover.md), from the judged
 * rounds and loss windows. Pure: the benchmark runs, this summarises and renders.
 */
import type { Loss, Round } from './schedules.ts';
import type { SystemId } from './system.ts';

export interface SystemInfo {
  readonly id: SystemId;
  readonly description: string;
  readonly heartbeatMs: number;
  readonly electionTimeoutMs: number;
  readonly electionTimeoutMaxMs: number;
}

/** JudgedRound is a round with, for edgectl, the control-plane durations from the agents' logs. */
export interface JudgedRound extends Round {
  readonly apiServerReadyMs?: number | null;
  readonly survivorsReadyMs?: number | null;
}

export interface FailoverResult {
  readonly when: string;
  readonly durationMs: number;
  readonly machine: {
    readonly cpus: number;
    readonly model: string;
    readonly memGiB: number;
    readonly kernel: string;
  };
  readonly versions: { readonly node: string; readonly etcd: string; readonly kubeApiserver: string };
  readonly config: {
    readonly powerRounds: number;
    readonly wifiRounds: number;
    readonly wifiOutagesMs: readonly number[];
    readonly lossSeconds: number;
    readonly controlSeconds: number;
    readonly lossRate: number;
    readonly burstMs: number;
    readonly burstEveryMs: number;
    readonly pollMs: number;
    readonly etcdPreVote: boolean;
    readonly lossTogether: boolean;
  };
  readonly systems: readonly SystemInfo[];
  readonly rounds: readonly JudgedRound[];
  readonly loss: readonly Loss[];
}

export interface Stat {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

/** pct is the nearest-rank percentile. */
export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function stat(xs: readonly (number | null | undefined)[]): Stat | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return null;
  return { n: v.length, p50: pct(v, 50), p99: pct(v, 99), min: Math.min(...v), max: Math.max(...v) };
}

export interface ScheduleSummary {
  readonly rounds: number;
  readonly errors: number;
  readonly detection: Stat | null;
  readonly newLeader: Stat | null;
  readonly polledNewLeader: Stat | null;
  readonly apiServerReady: Stat | null;
  readonly survivorsReady: Stat | null;
  /** Rounds in which the leader changed at all. */
  readonly roundsWithChange: number;
  readonly expectedChanges: number;
  readonly falseChanges: number;
  /** Rounds that called for a new leader and got none. */
  readonly missed: number;
}

/** scheduleKey names a schedule: `power`, or `wifi-<seconds>s`. */
export function scheduleKey(r: Pick<Round, 'schedule' | 'plannedOutageMs'>): string {
  return r.schedule === 'power' ? 'power' : `wifi-${Math.round((r.plannedOutageMs ?? 0) / 1000)}s`;
}

export function summariseRounds(rounds: readonly JudgedRound[]): ScheduleSummary {
  return {
    rounds: rounds.length,
    errors: rounds.filter((r) => r.error !== null).length,
    detection: stat(rounds.map((r) => r.detectionMs)),
    newLeader: stat(rounds.map((r) => r.newLeaderMs)),
    polledNewLeader: stat(rounds.map((r) => r.polledNewLeaderMs)),
    apiServerReady: stat(rounds.map((r) => r.apiServerReadyMs)),
    survivorsReady: stat(rounds.map((r) => r.survivorsReadyMs)),
    roundsWithChange: rounds.filter((r) => r.leaderChanges > 0).length,
    expectedChanges: rounds.reduce((a, r) => a + r.expectedChanges, 0),
    falseChanges: rounds.reduce((a, r) => a + r.falseChanges, 0),
    missed: rounds.filter((r) => r.expectedChanges === 1 && r.newLeaderMs === null).length,
  };
}

export type Summary = Partial<Record<SystemId, Record<string, ScheduleSummary>>>;

/** summarise groups the rounds by system and schedule (Wi-Fi rounds by their planned outage). */
export function summarise(res: FailoverResult): Summary {
  const out: Summary = {};
  const groups = new Map<string, JudgedRound[]>();
  for (const r of res.rounds) {
    const k = `${r.system}|${scheduleKey(r)}`;
    groups.set(k, [...(groups.get(k) ?? []), r]);
  }
  for (const [k, rs] of groups) {
    const [sys, sched] = k.split('|') as [SystemId, string];
    (out[sys] ??= {})[sched] = summariseRounds(rs);
  }
  return out;
}

export interface Goal {
  readonly goal: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

const sec = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? '—' : `${(ms / 1000).toFixed(2)} s`;
const ratio = (a: number | null | undefined, b: number | null | undefined) =>
  a == null || b == null || b === 0 ? null : a / b;
const times = (x: number | null) => (x === null ? '—' : `${x.toFixed(2)}×`);

/** goals judges the failover goals (docs/benchmarks/failover.md) from the summary. null: not measured in this run. */
export function goals(res: FailoverResult, sum: Summary): Goal[] {
  const e = sum.edgectl?.['power']?.newLeader ?? null;
  const d = sum['etcd-default']?.['power']?.newLeader ?? null;
  const k = sum['etcd-k3s']?.['power']?.newLeader ?? null;
  const lossOf = (id: SystemId) => res.loss.find((l) => l.system === id) ?? null;
  const le = lossOf('edgectl');
  const ld = lossOf('etcd-default');
  const ready = sum.edgectl?.['power']?.survivorsReady ?? null;
  const r = ratio(e?.p50, d?.p50);
  return [
    {
      goal: 'new leader after a power loss, p50: within 2× etcd-default',
      target: '≤ 2.00×',
      measured: e && d ? `${sec(e.p50)} / ${sec(d.p50)} = ${times(r)}` : '—',
      met: r === null ? null : r <= 2,
    },
    {
      goal: 'new leader after a power loss, p50: faster than etcd at k3s timings',
      target: '< 1.00×',
      measured: e && k ? `${sec(e.p50)} / ${sec(k.p50)} = ${times(ratio(e.p50, k.p50))}` : '—',
      met: e && k ? e.p50 < k.p50 : null,
    },
    {
      goal: `zero false failovers under ${res.config.burstMs / 1000} s bursts (where etcd-default shows them)`,
      target: 'edgectl 0',
      measured: le
        ? `edgectl ${le.leaderChanges}, etcd-default ${ld ? ld.leaderChanges : '—'} in ${le.lossSeconds} s (${le.bursts} bursts)`
        : '—',
      met: le ? le.leaderChanges === 0 : null,
    },
    {
      goal: 'all survivors Ready on the new control plane after a power loss, p50',
      target: '≤ 20 s',
      measured: sec(ready?.p50),
      met: ready ? ready.p50 <= 20_000 : null,
    },
  ];
}

const IDS: readonly SystemId[] = ['edgectl', 'etcd-default', 'etcd-k3s'];

/** renderMarkdown is docs/benchmarks/failover.md. */
export function renderMarkdown(res: FailoverResult, sum: Summary): string {
  const c = res.config;
  const systems = IDS.flatMap((id) => res.systems.filter((s) => s.id === id));
  const sys = (id: SystemId) => systems.find((s) => s.id === id);
  const timeouts = (s: SystemInfo) =>
    `${s.heartbeatMs} ms / ${s.electionTimeoutMs}–${s.electionTimeoutMaxMs} ms`;
  const p = (st: Stat | null | undefined) => (st ? `${sec(st.p50)} / ${sec(st.p99)}` : '—');
  const g = goals(res, sum);
  const lines: string[] = [
    '# Benchmark: failover, edgectl against etcd, side by side',
    '',
    `\`npm run bench:failover\` (root), ${res.when}, ${Math.round(res.durationMs / 60_000)} minutes. The same fault schedules, on the same lab topology (5 robot namespaces on one bridge, one member per robot), against three systems in one run:`,
    '',
    ...systems.map((s) => `- **${s.id}**: ${s.description}.`),
    '',
    `Machine: ${res.machine.cpus} CPUs (${res.machine.model}), ${res.machine.memGiB} GiB, Linux ${res.machine.kernel}, shared with other work. Node ${res.versions.node}, etcd ${res.versions.etcd} (Debian etcd-server), kube-apiserver ${res.versions.kubeApiserver}.`,
    '',
    '## Goals (issue #7)',
    '',
    '| goal | target | measured | met |',
    '| --- | --- | --- | --- |',
    ...g.map(
      (x) =>
        `| ${x.goal} | ${x.target} | ${x.measured} | ${x.met === null ? 'not measured' : x.met ? 'yes' : '**no**'} |`,
    ),
    '',
  ];

  const power = IDS.filter((id) => sum[id]?.['power']);
  if (power.length) {
    lines.push(
      `## Leader power loss (${c.powerRounds} rounds)`,
      '',
      "SIGKILL of the leader (edgectl: the robot's agent with its kube-apiserver and etcd; etcd: the member's process); once the survivors are whole it is powered on again with its data, and the next round starts when all five are whole. Times from the fault; p50 / p99 (nearest rank).",
      '',
      '| system | heartbeat / election timeout | detection | new leader (logs) | new leader min–max | new leader (polled every 50 ms) | false changes | API server ready | all survivors Ready |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      ...power.map((id) => {
        const s = sum[id]!['power']!;
        return `| ${id} | ${timeouts(sys(id)!)} | ${p(s.detection)} | ${p(s.newLeader)} | ${s.newLeader ? `${sec(s.newLeader.min)}–${sec(s.newLeader.max)}` : '—'} | ${p(s.polledNewLeader)} | ${s.falseChanges}${s.missed ? ` (${s.missed} without a new leader)` : ''} | ${id === 'edgectl' ? p(s.apiServerReady) : 'n/a'} | ${id === 'edgectl' ? p(s.survivorsReady) : 'n/a'} |`;
      }),
      '',
    );
  }

  const wifiKeys = c.wifiOutagesMs.map((ms) => `wifi-${Math.round(ms / 1000)}s`);
  if (IDS.some((id) => wifiKeys.some((k) => sum[id]?.[k]))) {
    lines.push(
      `## Leader Wi-Fi loss (${c.wifiRounds} rounds per length)`,
      '',
      "Link down of the leader's `eth0` inside its namespace for the given time, then up (routes put back). A Wi-Fi loss no longer than the system's election timeout calls for no leader change; a longer one calls for exactly one.",
      '',
      '| system | outage | election timeout | rounds with a leader change | leader changes expected | false changes | new leader (logs) | all survivors Ready |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |',
    );
    for (const k of wifiKeys)
      for (const id of IDS) {
        const s = sum[id]?.[k];
        if (!s) continue;
        lines.push(
          `| ${id} | ${k.slice(5, -1)} s | ${sys(id)!.electionTimeoutMs / 1000} s | ${s.roundsWithChange}/${s.rounds} | ${s.expectedChanges} | ${s.falseChanges}${s.missed ? ` (${s.missed} without a new leader)` : ''} | ${p(s.newLeader)} | ${id === 'edgectl' ? p(s.survivorsReady) : 'n/a'} |`,
        );
      }
    lines.push('');
  }

  if (res.loss.length) {
    const l0 = res.loss[0]!;
    lines.push(
      `## ${Math.round(c.lossRate * 100)} % random loss with ${c.burstMs / 1000} s bursts every ${c.burstEveryMs / 1000} s (${l0.lossSeconds} s)`,
      '',
      `${c.lossTogether ? 'All three systems at once, each on its bridge with the same nftables rules switched at the same instants' : 'One system after the other'}: \`numgen random mod 100 < ${Math.round(c.lossRate * 100)} drop\` for every frame between robots, and every ${c.burstEveryMs / 1000} s a burst that drops every frame for ${c.burstMs / 1000} s. No member is killed or cut off, so every leader change is false. Before it, a ${l0.controlSeconds} s control window with no fault at all.`,
      '',
      '| system | election timeout | leader changes (false) | bursts followed by a change | changes under random loss alone | term rise | control window: changes |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...IDS.flatMap((id) => {
        const l = res.loss.find((x) => x.system === id);
        return l
          ? [
              `| ${id} | ${sys(id)!.electionTimeoutMs / 1000} s | ${l.leaderChanges} | ${l.burstsWithChange}/${l.bursts} | ${l.changesUnderLossAlone} | ${l.termRise} | ${l.controlChanges} |`,
            ]
          : [];
      }),
      '',
    );
  }

  const e = sum.edgectl;
  const ratioRows: string[] = [];
  const ratioRow = (
    name: string,
    get: (s: Record<string, ScheduleSummary> | undefined) => number | null | undefined,
  ) => {
    const ev = get(e);
    const dv = get(sum['etcd-default']);
    const kv = get(sum['etcd-k3s']);
    if (ev == null) return;
    ratioRows.push(
      `| ${name} | ${sec(ev)} | ${sec(dv)} | ${times(ratio(ev, dv))} | ${sec(kv)} | ${times(ratio(ev, kv))} |`,
    );
  };
  ratioRow('power loss: new leader p50 (logs)', (s) => s?.['power']?.newLeader?.p50);
  ratioRow('power loss: new leader p99 (logs)', (s) => s?.['power']?.newLeader?.p99);
  ratioRow('power loss: new leader p50 (polled)', (s) => s?.['power']?.polledNewLeader?.p50);
  ratioRow('power loss: detection p50', (s) => s?.['power']?.detection?.p50);
  for (const k of wifiKeys.slice(1))
    ratioRow(`Wi-Fi loss ${k.slice(5, -1)} s: new leader p50`, (s) => s?.[k]?.newLeader?.p50);
  if (ratioRows.length)
    lines.push(
      '## Ratios, edgectl / etcd, from this run',
      '',
      '| measure | edgectl | etcd-default | edgectl / etcd-default | etcd-k3s | edgectl / etcd-k3s |',
      '| --- | --- | --- | --- | --- | --- |',
      ...ratioRows,
      '',
    );

  lines.push(
    '## What the figures say',
    '',
    ...notes(res, sum, g),
    '',
    '## Definitions',
    '',
    "- **New leader (logs)**: from the fault (host clock, just before the SIGKILL or link down) to the first log line of a surviving member saying it became leader in a term above the term before the fault: `<id> became leader at term <n>` in etcd's zap log, `<robot> became leader at term <n>` in the agent's log. All processes share the host clock, and both logs have ms precision.",
    `- **New leader (polled)**: the same, seen from the host: every ${c.pollMs} ms it asks every reachable member (etcd: \`POST /v3/maintenance/status\`; edgectl: the agent's \`/status\`) and takes the answer time of the first poll where a survivor says it leads in a higher term. It carries up to one poll interval plus a request of delay, the same for every system.`,
    '- **Detection**: from the fault to the first survivor starting an election (pre-candidate or candidate).',
    "- **Leader change**: a term above the term before the fault in which some member became leader, counted once per term, from every member's log, from the fault to the end of the round (the system whole again after the rest). **False leader changes** are those beyond what the fault calls for: a power loss calls for one; a Wi-Fi loss calls for one when it lasts longer than the system's election timeout (edgectl fleet 1.8 s, etcd-default 1 s, etcd-k3s 5 s), else none (so any change after a 1 s loss is false, for every system: 1 s does not exceed any of the three timeouts); loss and bursts call for none.",
    "- **API server ready** and **all survivors Ready** (edgectl): from the fault to the new leader's kube-apiserver answering /readyz, and to the last survivor's lab kubelet Ready on it (lab/analysis.ts stepDurations, from the agents' logs). etcd alone has no control plane to measure.",
    `- etcd runs ${c.etcdPreVote ? 'with `--pre-vote`: etcd 3.4 defaults it off, etcd 3.5+ (and so k3s) on, and it only spares etcd disruptions' : "without `--pre-vote` (etcd 3.4's default)"}. etcd randomizes each follower timeout in [timeout, 2 × timeout). Its data directories are on the same disk as the agents' state.`,
    '',
    '## Reproduce',
    '',
    '```sh',
    `sudo npm run bench:failover   # writes docs/benchmarks/failover.md and failover.json`,
    '# shorter, for development: EDGECTL_BENCH_ROUNDS=3 EDGECTL_BENCH_WIFI_ROUNDS=2 EDGECTL_BENCH_LOSS_SECONDS=120',
    '# one part: EDGECTL_BENCH_SYSTEMS=etcd-default,etcd-k3s EDGECTL_BENCH_SCHEDULES=power,wifi,loss',
    '```',
    '',
    `This run: EDGECTL_BENCH_ROUNDS=${c.powerRounds} EDGECTL_BENCH_WIFI_ROUNDS=${c.wifiRounds} EDGECTL_BENCH_LOSS_SECONDS=${c.lossSeconds} EDGECTL_BENCH_CONTROL_SECONDS=${c.controlSeconds}. Namespaces \`elf-*\` (edgectl lab, 10.77.50.0/24) and \`elg-*\` (etcd, 10.77.51.0/24); both are removed at the end. Every round, with its victim, terms and times: \`docs/benchmarks/failover.json\`.`,
    '',
  );
  return lines.join('\n');
}

/** notes explains the figures, including every goal missed and why. */
function notes(res: FailoverResult, sum: Summary, g: readonly Goal[]): string[] {
  const out: string[] = [];
  const e = sum.edgectl?.['power'];
  const d = sum['etcd-default']?.['power'];
  const k = sum['etcd-k3s']?.['power'];
  if (e?.newLeader && d?.newLeader)
    out.push(
      `- **Power loss.** A new leader takes the election timeout plus one vote round in every system. edgectl's fleet profile waits 1.8–2.1 s without a heartbeat before it campaigns; etcd-default waits 1–2 s, randomized over a range twice as wide. Measured p50: edgectl ${sec(e.newLeader.p50)}, etcd-default ${sec(d.newLeader.p50)}${k?.newLeader ? `, etcd-k3s ${sec(k.newLeader.p50)}` : ''}. edgectl's narrow spread (300 ms) shows in its p99: ${sec(e.newLeader.p99)} against ${sec(d.newLeader.p99)}.`,
    );
  if (g[0]?.met === false)
    out.push(
      "- **Goal missed: within 2× etcd-default.** The fleet profile's election timeout (1800–2100 ms) is a deliberate trade-off (docs/timing.md): it must exceed a 1.5 s burst plus a few heartbeats, or every burst deposes the leader, as it does for etcd-default in the loss table. Nothing can tell a 1.5 s burst from a dead leader within those 1.5 s. The numbers are reported as measured, not tuned.",
    );
  if (e?.survivorsReady)
    out.push(
      `- **Survivors Ready.** After the new leader, its new kube-apiserver and etcd start from nothing in the lab (${sec(e.apiServerReady?.p50)} p50 to /readyz, on 2 shared cores), and the survivors' kubelets register on it ${e.apiServerReady?.p50 !== undefined && e.survivorsReady.p50 !== undefined ? `${sec(e.survivorsReady.p50 - e.apiServerReady.p50)} later (p50 against p50)` : 'after that'}; p50 ${sec(e.survivorsReady.p50)}, p99 ${sec(e.survivorsReady.p99)}.`,
    );
  const le = res.loss.find((l) => l.system === 'edgectl');
  const ld = res.loss.find((l) => l.system === 'etcd-default');
  const lk = res.loss.find((l) => l.system === 'etcd-k3s');
  if (le && ld)
    out.push(
      `- **Bursts.** A 1.5 s burst is longer than etcd-default's 1 s election timeout: its followers campaign and CheckQuorum makes its leader step down (${ld.burstsWithChange} of ${ld.bursts} bursts changed its leader). edgectl's stickiness window and lease ride it out (${le.leaderChanges} changes)${lk ? `; etcd at k3s timings rides it out too (${lk.leaderChanges}), at the price of a 5–10 s failover` : ''}.`,
    );
  if (g[2]?.met === false)
    out.push(
      '- **Goal missed: zero false failovers under bursts.** edgectl changed its leader under loss and bursts in this run; the loss table and failover.json show when. docs/timing.md puts the chance per burst at about 10⁻⁶ at 10 % loss, so a change here points at something the model leaves out (e.g. CPU stalls of the agents on the shared machine) and needs a look.',
    );
  const w1 = sum.edgectl?.['wifi-1s'];
  if (w1)
    out.push(
      `- **1 s Wi-Fi loss.** edgectl: ${w1.falseChanges} false changes in ${w1.rounds} rounds; etcd-default: ${sum['etcd-default']?.['wifi-1s']?.falseChanges ?? '—'}; etcd-k3s: ${sum['etcd-k3s']?.['wifi-1s']?.falseChanges ?? '—'}.`,
    );
  if (!out.length) out.push('- Not enough of the benchmark ran in this run to compare.');
  return out;
}
