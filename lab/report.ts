/**
 * The lab run report: a JSON summary for machines, a Markdown summary for people, and a timeline
 * picture (SVG) of roles, faults, elections and readiness per robot over time, meant to be looked
 * at. All three are pure renderings of a RunReport; golden-tested.
 */
import type { AddonPodObservation } from './node/addons.ts';
import type { PodObservation } from './workload.ts';
import type { LabObservation } from './lab.ts';
import type { Analysis, FaultEvent, LogEvent } from './analysis.ts';

export interface RunReport {
  readonly scenario: string;
  readonly description: string;
  readonly robots: readonly string[];
  readonly voters: readonly string[];
  readonly startedAt: string;
  /** Wall-clock ms of the first observation (the timeline's zero) and of the first fault. */
  readonly tStart: number;
  readonly t0: number;
  readonly tEnd: number;
  readonly formedMs: number | null;
  /** Real nodes with a workload: from applying it to every replica running with a site address. */
  readonly workloadStartMs?: number | null;
  /** Real nodes with a workload: the site's addon pods when the workload was applied (null: unread). */
  readonly addonPods?: readonly AddonPodObservation[] | null;
  /** Real nodes with a workload: its pods just before the first fault and at the end of the run. */
  readonly workloadPods?: {
    readonly before: readonly PodObservation[];
    readonly after: readonly PodObservation[];
  };
  readonly apiServerColdStartMs: number | null;
  /** The site on the final leader's server (null: it could not be read). */
  readonly site: {
    readonly namespace: boolean;
    readonly epoch: string | null;
    readonly networks: readonly string[];
  } | null;
  readonly faults: readonly FaultEvent[];
  readonly analysis: Analysis;
  readonly leaks: {
    readonly netns: readonly string[];
    readonly links: readonly string[];
    readonly nftTables: readonly string[];
    readonly processes: readonly number[];
    /** Real nodes: cgroups under the lab's prefix. */
    readonly cgroups?: readonly string[];
  } | null;
  readonly passed: boolean;
}

export type RobotState =
  'off' | 'paused' | 'no-wifi' | 'leader' | 'leader-starting' | 'candidate' | 'ready' | 'joining' | 'unknown';

/** robotState classifies one robot in one observation for the timeline. */
export function robotState(o: LabObservation, name: string): RobotState {
  const r = o.robots.find((x) => x.name === name);
  if (!r || !r.powered) return 'off';
  if (r.paused) return 'paused';
  if (!r.wifi) return 'no-wifi';
  const s = r.status;
  if (!s) return 'unknown';
  if (s.role === 'leader') return s.lifecycle === 'leading.serving' ? 'leader' : 'leader-starting';
  if (s.role === 'candidate' || s.role === 'preCandidate') return 'candidate';
  const node = o.nodes?.find((n) => n.name === name);
  return s.lifecycle === 'following.ready' && (o.nodes === null || node?.ready) ? 'ready' : 'joining';
}

export interface Segment {
  readonly robot: string;
  readonly state: RobotState;
  readonly from: number;
  readonly to: number;
}

/** segments merges consecutive observations of the same state, per robot. */
export function segments(
  observations: readonly LabObservation[],
  robots: readonly string[],
  tEnd: number,
): Segment[] {
  const out: Segment[] = [];
  for (const name of robots) {
    let cur: { state: RobotState; from: number } | null = null;
    for (const o of observations) {
      const st = robotState(o, name);
      if (!cur || cur.state !== st) {
        if (cur) out.push({ robot: name, state: cur.state, from: cur.from, to: o.t });
        cur = { state: st, from: o.t };
      }
    }
    if (cur) out.push({ robot: name, state: cur.state, from: cur.from, to: tEnd });
  }
  return out;
}

const COLORS: Record<RobotState, string> = {
  leader: '#2e7d32',
  'leader-starting': '#a5d6a7',
  ready: '#1565c0',
  joining: '#90caf9',
  candidate: '#ef6c00',
  paused: '#8e24aa',
  'no-wifi': '#616161',
  off: '#212121',
  unknown: '#e0e0e0',
};

const LABELS: Record<RobotState, string> = {
  leader: 'leader, serving',
  'leader-starting': 'leader, API server starting',
  ready: 'worker Ready',
  joining: 'follower, joining',
  candidate: 'election',
  paused: 'paused',
  'no-wifi': 'Wi-Fi off',
  off: 'power off',
  unknown: 'no answer',
};

const esc = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** renderTimelineSvg draws one lane per robot, fault lines and election marks, time in seconds. */
export function renderTimelineSvg(
  report: Pick<RunReport, 'scenario' | 'robots' | 'tStart' | 'tEnd' | 'faults'>,
  segs: readonly Segment[],
  elections: readonly LogEvent[],
): string {
  const left = 70;
  const top = 62;
  const lane = 28;
  const width = 1000;
  const plotW = width - left - 20;
  const span = Math.max(1, report.tEnd - report.tStart);
  const x = (t: number) =>
    left + ((Math.min(Math.max(t, report.tStart), report.tEnd) - report.tStart) / span) * plotW;
  const laneY = (robot: string) => top + report.robots.indexOf(robot) * lane;
  const plotH = report.robots.length * lane;
  const legendY = top + plotH + 40;
  const height = legendY + 45;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="20" font-size="15" font-weight="bold">edgectl lab: ${esc(report.scenario)}</text>`,
  ];
  for (const r of report.robots)
    parts.push(`<text x="${left - 8}" y="${laneY(r) + lane / 2 + 4}" text-anchor="end">${esc(r)}</text>`);
  for (const s of segs) {
    const x1 = x(s.from);
    const w = Math.max(0.5, x(s.to) - x1);
    parts.push(
      `<rect x="${x1.toFixed(1)}" y="${laneY(s.robot) + 3}" width="${w.toFixed(1)}" height="${lane - 6}" fill="${COLORS[s.state]}"><title>${esc(s.robot)}: ${LABELS[s.state]} ${((s.from - report.tStart) / 1000).toFixed(1)}s-${((s.to - report.tStart) / 1000).toFixed(1)}s</title></rect>`,
    );
  }
  // Seconds axis: a tick every 1, 5, 10, 30 or 60 s, whichever gives at most ~20 ticks.
  const step = [1, 5, 10, 30, 60, 300].find((s) => span / 1000 / s <= 20) ?? 600;
  for (let s = 0; s * 1000 <= span; s += step) {
    const xx = x(report.tStart + s * 1000);
    parts.push(
      `<line x1="${xx.toFixed(1)}" y1="${top + plotH}" x2="${xx.toFixed(1)}" y2="${top + plotH + 5}" stroke="#000"/>`,
    );
    parts.push(`<text x="${xx.toFixed(1)}" y="${top + plotH + 18}" text-anchor="middle">${s}s</text>`);
  }
  report.faults.forEach((f, i) => {
    const xv = x(f.t);
    const xx = xv.toFixed(1);
    const label =
      f.robots.length && f.robots.length < report.robots.length
        ? `${f.text} (${f.robots.join(',')})`
        : f.text;
    // Labels near an edge end (or start) at their line; alternate heights keep close faults legible.
    const anchor = xv > width - 120 ? 'end' : xv < left + 60 ? 'start' : 'middle';
    const y = top - 12 - (i % 2) * 13;
    parts.push(
      `<line x1="${xx}" y1="${y + 4}" x2="${xx}" y2="${top + plotH}" stroke="#c62828" stroke-width="1.5" stroke-dasharray="4 2"><title>${esc(f.applied.join(' '))}</title></line>`,
    );
    parts.push(`<text x="${xx}" y="${y}" fill="#c62828" text-anchor="${anchor}">${esc(label)}</text>`);
  });
  for (const e of elections) {
    if (!report.robots.includes(e.node)) continue;
    const cx = x(e.t);
    const cy = laneY(e.node) + lane / 2;
    parts.push(
      `<path d="M ${(cx - 5).toFixed(1)} ${cy} L ${cx.toFixed(1)} ${cy - 6} L ${(cx + 5).toFixed(1)} ${cy} L ${cx.toFixed(1)} ${cy + 6} Z" fill="#ffd600" stroke="#000"><title>${esc(e.node)} elected, term ${e.term}</title></path>`,
    );
  }
  // Legend: five entries per row, in fixed columns.
  const entries = (Object.keys(COLORS) as RobotState[]).map((st) => [COLORS[st], LABELS[st]] as const);
  entries.forEach(([color, label], i) => {
    const lx = left + (i % 5) * 180;
    const ly = legendY + Math.floor(i / 5) * 18;
    parts.push(`<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${color}"/>`);
    parts.push(`<text x="${lx + 16}" y="${ly}">${label}</text>`);
  });
  const ex = left + (entries.length % 5) * 180;
  const ey = legendY + Math.floor(entries.length / 5) * 18;
  parts.push(
    `<path d="M ${ex} ${ey - 4} l 6 -6 l 6 6 l -6 6 z" fill="#ffd600" stroke="#000"/><text x="${ex + 16}" y="${ey}">elected leader</text>`,
  );
  parts.push('</svg>', '');
  return parts.join('\n');
}

const sec = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(2)} s`;

/** renderMarkdown is the report for people. */
export function renderMarkdown(r: RunReport): string {
  const a = r.analysis;
  const lines = [
    `# Lab run: ${r.scenario} — ${r.passed ? 'PASSED' : 'FAILED'}`,
    '',
    r.description,
    '',
    `Robots: ${r.robots.join(', ')} (voters ${r.voters.join(', ')}). Started ${r.startedAt}.`,
    `Site formed in ${sec(r.formedMs)}; kube-apiserver cold start ${sec(r.apiServerColdStartMs)}.${r.workloadStartMs !== undefined ? ` Workload (real nodes, site network) running ${sec(r.workloadStartMs)} after it was applied.` : ''}`,
    r.site
      ? `Site configuration on the final leader's server: namespace ${r.site.namespace ? 'present' : '**missing**'} (epoch ${r.site.epoch ?? '-'}), networks: ${r.site.networks.join(', ') || 'none'}.`
      : "Site configuration on the final leader's server: **could not be read**.",
    '',
    '![timeline](timeline.svg)',
    '',
    '## Faults',
    '',
    '| at | fault | applied | leader before |',
    '| --- | --- | --- | --- |',
    ...r.faults.map(
      (f) =>
        `| ${sec(f.t - r.t0)} | ${f.text} | ${f.error === undefined ? f.applied.join(' ') : `**not applied**: ${f.error.replace(/\s+/g, ' ')}`} | ${f.leaderBefore ?? '-'} (term ${f.termBefore}) |`,
    ),
    '',
    '## Re-formation after each leader loss',
    '',
    '| fault | detection | new leader | API server ready | all survivors Ready | new leader (term) |',
    '| --- | --- | --- | --- | --- | --- |',
    ...a.durations.map(
      (d) =>
        `| ${d.stepId}: ${d.fault} | ${sec(d.detectionMs)} | ${sec(d.electionMs)} | ${sec(d.controlPlaneReadyMs)} | ${sec(d.allReadyMs)} | ${d.newLeader ?? '-'} (${d.newTerm ?? '-'}) |`,
    ),
    '',
    ...(r.workloadPods
      ? [
          '## Workload',
          '',
          'Pods before the first fault and at the end of the run (node, phase, address on the site network):',
          '',
          '| pod | workload | before | after |',
          '| --- | --- | --- | --- |',
          ...[...new Set([...r.workloadPods.before, ...r.workloadPods.after].map((p) => p.name))]
            .sort()
            .map((name) => {
              const at = (ps: readonly PodObservation[]) => {
                const p = ps.find((x) => x.name === name);
                return p
                  ? `${p.node ?? '-'} ${p.phase}${p.deleting ? ' (deleting)' : ''} ${p.siteAddress ?? '-'}`
                  : '—';
              };
              const p = [...r.workloadPods!.before, ...r.workloadPods!.after].find((x) => x.name === name)!;
              return `| ${name} | ${p.workload ?? '-'} | ${at(r.workloadPods!.before)} | ${at(r.workloadPods!.after)} |`;
            }),
          '',
        ]
      : []),
    '## Expectations',
    '',
    '| expectation | after | within | measured | result | detail |',
    '| --- | --- | --- | --- | --- | --- |',
    ...a.expectations.map(
      (e) =>
        `| ${e.expectation.kind} | ${e.expectation.after} | ${sec(e.expectation.withinMs)} | ${sec(e.measuredMs)} | ${e.ok ? 'ok' : '**FAILED**'} | ${e.detail} |`,
    ),
    '',
    '## Invariants',
    '',
    a.violations.length === 0
      ? 'None broken: one leader per term; no two serving control planes of different epochs reachable by a majority; no committed entry lost; converged after heal.'
      : a.violations
          .map((v) => `- **${v.invariant}**: ${v.message}\n  \`${JSON.stringify(v.evidence)}\``)
          .join('\n'),
    '',
    `Leader changes during the run: ${a.leaderChanges}.`,
    '',
  ];
  if (r.leaks)
    lines.push(
      '## Clean-up',
      '',
      r.leaks.netns.length + r.leaks.links.length + r.leaks.nftTables.length + r.leaks.processes.length === 0
        ? '`lab down` left no namespace, link, nft table or process behind.'
        : `**Left behind**: ${JSON.stringify(r.leaks)}`,
      '',
    );
  return lines.join('\n');
}
