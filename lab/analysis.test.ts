/**
 * The run judge on hand-made records: it must find each invariant breach (so a real breach in the
 * lab cannot pass unnoticed), not flag what is allowed, and measure re-formation from log times.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AgentStatus } from '../agent/agent.ts';
import {
  analyse,
  parseAgentLog,
  servingIntervals,
  unreachableIntervals,
  type LogEvent,
  type RunRecord,
} from './analysis.ts';
import type { LabObservation } from './lab.ts';
import { golden } from './golden.ts';
import { renderMarkdown, renderTimelineSvg, segments, type RunReport } from './report.ts';
import type { Expectation } from './scenario.ts';
import type { PodObservation } from './workload.ts';

const T = 1_800_000_000_000;
const robots = ['r1', 'r2', 'r3'];

const status = (
  name: string,
  role: string,
  term: number,
  leader: string | null,
  ready: boolean,
  commitIndex = 1,
): AgentStatus =>
  ({
    node: name,
    site: 'lab',
    role,
    voter: true,
    term,
    leader,
    commitIndex,
    lifecycle: role === 'leader' ? 'leading.serving' : ready ? 'following.ready' : 'following.joining',
    controlPlane: {
      runtime: 'lab',
      server: role === 'leader' ? { epoch: term, state: 'serving' } : null,
      worker:
        role === 'leader'
          ? null
          : leader
            ? { leader, epoch: term, state: ready ? 'ready' : 'joining' }
            : null,
      siteAppliedEpoch: role === 'leader' ? term : null,
    },
    members: [],
    lastErrors: [],
    transport: {},
    uptimeMs: 0,
  }) as unknown as AgentStatus;

/** obs: r? leads `term`; `off` robots are powered off; every other robot is Ready on it. */
function obs(t: number, leader: string, term: number, off: string[] = [], commitIndex = 1): LabObservation {
  return {
    t,
    leader,
    term,
    robots: robots.map((name) => ({
      name,
      address: '',
      powered: !off.includes(name),
      paused: false,
      wifi: true,
      status: off.includes(name)
        ? null
        : status(name, name === leader ? 'leader' : 'follower', term, leader, true, commitIndex),
    })),
    nodes: robots.filter((r) => !off.includes(r)).map((name) => ({ name, ready: true, leaseAgeMs: 100 })),
  };
}

const ev = (t: number, node: string, kind: LogEvent['kind'], extra: Partial<LogEvent> = {}): LogEvent => ({
  t: T + t,
  node,
  term: extra.term ?? 0,
  kind,
  ...extra,
});

/** A clean leader power loss: r1 leads term 1, dies at 10 s; r2 leads term 2 at 11 s. */
function cleanRun(): RunRecord {
  return {
    robots,
    voters: robots,
    t0: T + 9_000,
    tEnd: T + 30_000,
    faults: [
      {
        t: T + 10_000,
        stepId: 'off',
        text: 'power-off leader',
        applied: ['kill:r1'],
        robots: ['r1'],
        leaderBefore: 'r1',
        termBefore: 1,
      },
    ],
    observations: [
      obs(T + 9_500, 'r1', 1),
      obs(T + 10_500, 'r1', 1, ['r1']),
      obs(T + 16_000, 'r2', 2, ['r1']),
    ],
    logs: {
      r1: [
        ev(1_000, 'r1', 'role', { role: 'leader', term: 1 }),
        ev(4_000, 'r1', 'serving', { epoch: 1, term: 1 }),
      ],
      r2: [
        ev(11_000, 'r2', 'role', { role: 'preCandidate', term: 1 }),
        ev(11_050, 'r2', 'role', { role: 'leader', term: 2 }),
        ev(14_000, 'r2', 'serving', { epoch: 2, term: 2 }),
      ],
      r3: [
        ev(4_500, 'r3', 'ready', { epoch: 1, leader: 'r1' }),
        ev(15_000, 'r3', 'ready', { epoch: 2, leader: 'r2', term: 2 }),
      ],
    },
    final: obs(T + 29_000, 'r2', 2),
  };
}

test('a clean failover breaks no invariant and is measured from the log times', () => {
  const a = analyse(cleanRun(), [
    { kind: 'new-leader', after: 'off', withinMs: 2000 },
    { kind: 'all-ready', after: 'off', withinMs: 10_000 },
  ]);
  assert.deepEqual(a.violations, []);
  assert.deepEqual(a.durations, [
    {
      stepId: 'off',
      fault: 'power-off leader',
      detectionMs: 1000,
      electionMs: 1050,
      controlPlaneReadyMs: 4000,
      allReadyMs: 5000,
      newLeader: 'r2',
      newTerm: 2,
    },
  ]);
  assert.deepEqual(
    a.expectations.map((e) => [e.expectation.kind, e.ok, e.measuredMs]),
    [
      ['new-leader', true, 1050],
      ['all-ready', true, 6000],
    ],
  );
});

test('two leaders in one term are caught', () => {
  const r = cleanRun();
  const bad = {
    ...r,
    logs: { ...r.logs, r3: [...r.logs['r3']!, ev(12_000, 'r3', 'role', { role: 'leader', term: 2 })] },
  };
  const a = analyse(bad, []);
  assert.deepEqual(
    a.violations.map((v) => v.invariant),
    ['one-leader-per-term'],
  );
  assert.match(a.violations[0]!.message, /term 2 had 2 leaders: r2, r3/);
});

test('two servers of different epochs both reachable by a majority are caught; an isolated one is not', () => {
  const r = cleanRun();
  // r1 is not killed but keeps serving epoch 1 while r2 serves epoch 2: a fencing failure.
  const overlap: RunRecord = { ...r, faults: [{ ...r.faults[0]!, applied: ['heal'], robots: [] }] };
  const a = analyse(overlap, []);
  assert.equal(a.violations.filter((v) => v.invariant === 'overlapping-serving-epochs').length, 1);
  // The same, but r1 was cut off the Wi-Fi: it may serve no one, so that is allowed.
  const isolated: RunRecord = {
    ...r,
    faults: [{ ...r.faults[0]!, applied: ['isolate:r1'], robots: ['r1'] }],
  };
  assert.deepEqual(
    analyse(isolated, []).violations.filter((v) => v.invariant === 'overlapping-serving-epochs'),
    [],
  );
  assert.deepEqual(unreachableIntervals(isolated, 'r1'), [[T + 10_000, Infinity]]);
  // A power-off ends r1's serving interval.
  assert.deepEqual(
    servingIntervals(r).map((i) => [i.node, i.epoch, i.to - T]),
    [
      ['r1', 1, 10_000],
      ['r2', 2, 30_000],
    ],
  );
});

test('a minority side of a partition is unreachable until heal', () => {
  const r = cleanRun();
  const p: RunRecord = {
    ...r,
    faults: [
      { ...r.faults[0]!, applied: ['partition:r1/r2,r3'], robots: ['r1'] },
      {
        t: T + 20_000,
        stepId: 'h',
        text: 'heal',
        applied: ['heal'],
        robots,
        leaderBefore: 'r2',
        termBefore: 2,
      },
    ],
  };
  assert.deepEqual(unreachableIntervals(p, 'r1'), [[T + 10_000, T + 20_000]]);
  assert.deepEqual(unreachableIntervals(p, 'r2'), []);
});

test('a lost commit and a site that never converges are caught', () => {
  const r = cleanRun();
  const lost: RunRecord = {
    ...r,
    observations: [...r.observations, obs(T + 17_000, 'r2', 2, ['r1'], 7)],
    final: obs(T + 29_000, 'r2', 2, [], 3),
  };
  assert.deepEqual(
    analyse(lost, []).violations.map((v) => v.invariant),
    ['committed-entries-lost'],
  );
  const stuck: RunRecord = { ...r, final: { ...obs(T + 29_000, 'r2', 2), nodes: null } };
  assert.deepEqual(
    analyse(stuck, []).violations.map((v) => v.invariant),
    ['not-converged'],
  );
});

test('no-leader-change fails on any higher term after the fault', () => {
  const r = cleanRun();
  const a = analyse(r, [{ kind: 'no-leader-change', after: 'off', withinMs: null }]);
  assert.equal(a.expectations[0]!.ok, false);
  assert.match(a.expectations[0]!.detail, /term moved to 2/);
});

test('agent log lines become events; torn and foreign lines are skipped', () => {
  const text = [
    '{"level":30,"time":"2026-11-22T07:50:15.522Z","node":"r1","term":1,"role":"candidate","msg":"r1 became candidate at term 1"}',
    '{"level":30,"time":"2026-11-22T07:50:16.000Z","node":"r1","term":1,"role":"leader","epoch":1,"msg":"r1 serves epoch 1 at https://10.77.1.1:6443"}',
    '{"level":40,"time":"2026-11-22T07:50:17.000Z","node":"r1","term":2,"msg":"r1 stops its server of epoch 1"}',
    '{"level":30,"time":"2026-11-22T07:50:18.000Z","node":"r1","term":2,"epoch":2,"leader":"r2","msg":"r1 is Ready on r2\'s server"}',
    'node: warning from stderr',
    '{"level":30,"time":"2026-11-22T07:50:19.0',
  ].join('\n');
  assert.deepEqual(
    parseAgentLog('r1', text).map((e) => [e.kind, e.role ?? e.epoch, e.term]),
    [
      ['role', 'candidate', 1],
      ['serving', 1, 1],
      ['stopped', 1, 2],
      ['ready', 2, 2],
    ],
  );
});

test('the report renders the same Markdown and timeline picture for the same run', () => {
  const rec = cleanRun();
  const analysis = analyse(rec, [{ kind: 'new-leader', after: 'off', withinMs: 2000 }]);
  const report: RunReport = {
    scenario: 'leader-power-loss',
    description: 'A synthetic run.',
    robots,
    voters: robots,
    startedAt: new Date(T).toISOString(),
    tStart: T + 9_000,
    t0: T + 9_000,
    tEnd: T + 30_000,
    formedMs: 7000,
    apiServerColdStartMs: 3100,
    site: { namespace: true, epoch: '2', networks: ['fleet'] },
    faults: rec.faults,
    analysis,
    leaks: { netns: [], links: [], nftTables: [], processes: [] },
    passed: true,
  };
  golden('report.md', renderMarkdown(report));
  const elections = Object.values(rec.logs)
    .flat()
    .filter((e) => e.kind === 'role' && e.role === 'leader');
  golden('timeline.svg', renderTimelineSvg(report, segments(rec.observations, robots, rec.tEnd), elections));
});

test('no expectation passes without the event it waits for: a fault that did not apply fails them all', () => {
  const r = cleanRun();
  // The drop the fault asked for was refused: nothing happened, and the site stayed as it was.
  const failed: RunRecord = {
    ...r,
    faults: [
      {
        ...r.faults[0]!,
        text: 'drop:all->leader=1',
        applied: [],
        robots: [],
        error: 'nft: Error: Could not process rule',
      },
    ],
    observations: [obs(T + 9_500, 'r1', 1), obs(T + 10_009, 'r1', 1), obs(T + 16_000, 'r1', 1)],
    logs: { r1: r.logs['r1']!, r2: [], r3: [r.logs['r3']![0]!] },
    final: obs(T + 29_000, 'r1', 1),
  };
  const a = analyse(failed, [
    { kind: 'demoted', after: 'off', withinMs: 5000 },
    { kind: 'all-ready', after: 'off', withinMs: 5000 },
    { kind: 'converged', after: 'off', withinMs: 5000 },
    { kind: 'no-leader-change', after: 'off', withinMs: null },
  ]);
  for (const e of a.expectations) {
    assert.equal(e.ok, false, e.expectation.kind);
    assert.match(e.detail, /did not apply: nft: Error/, e.expectation.kind);
  }
});

test('demoted needs a robot to demote, and every expectation needs its fault to have fired', () => {
  const r = cleanRun();
  const nobody: RunRecord = { ...r, faults: [{ ...r.faults[0]!, applied: ['heal'], robots: [] }] };
  const d = analyse(nobody, [{ kind: 'demoted', after: 'off', withinMs: 5000 }]).expectations[0]!;
  assert.equal(d.ok, false);
  assert.match(d.detail, /took no robot away/);
  const never = analyse({ ...r, faults: [] }, [
    { kind: 'all-ready', after: 'off', withinMs: 60_000 },
    { kind: 'no-leader-change', after: 'off', withinMs: null },
  ]).expectations;
  for (const e of never) {
    assert.equal(e.ok, false, e.expectation.kind);
    assert.match(e.detail, /fault off never fired/);
  }
});

test('the workload expectations: back on a survivor in time, the lost addresses freed, none twice, survivors untouched', () => {
  const r = cleanRun();
  const pod = (
    name: string,
    workload: string,
    node: string,
    ip: string,
    o: Partial<PodObservation> = {},
  ) => ({
    name,
    uid: `${name}-${node}`,
    workload,
    node,
    phase: 'Running',
    ready: true,
    deleting: false,
    restarts: 0,
    siteAddress: ip,
    ...o,
  });
  const alloc = (ip: string, pod: string, id: string) => ({ ip, pod: `site-lab/${pod}`, id });
  // r1 (the leader) runs db-0 and web-a; r2 runs web-b. r1 loses power at +10 s.
  const before = {
    pods: [
      pod('db-0', 'StatefulSet', 'r1', '10.78.1.22'),
      pod('web-a', 'Deployment', 'r1', '10.78.1.20'),
      pod('web-b', 'Deployment', 'r2', '10.78.1.21'),
    ],
    allocations: [
      alloc('10.78.1.22', 'db-0', 's1'),
      alloc('10.78.1.20', 'web-a', 's2'),
      alloc('10.78.1.21', 'web-b', 's3'),
    ],
  };
  const during = { pods: before.pods.slice(2), allocations: before.allocations.slice(2) };
  const after = {
    pods: [
      pod('db-0', 'StatefulSet', 'r3', '10.78.1.22'),
      pod('web-c', 'Deployment', 'r3', '10.78.1.23'),
      before.pods[2]!,
    ],
    allocations: [
      alloc('10.78.1.22', 'db-0', 's4'),
      alloc('10.78.1.23', 'web-c', 's5'),
      before.allocations[2]!,
    ],
  };
  const [o1, o2, o3] = r.observations;
  const rec: RunRecord = {
    ...r,
    workload: { deployment: 2, statefulset: 1 },
    observations: [
      { ...o1!, workload: before },
      { ...o2!, workload: during },
      { ...o3!, workload: after },
    ],
    final: { ...r.final!, workload: after },
  };
  const judge = (kind: Expectation['kind'], withinMs: number | null, x = rec) =>
    analyse(x, [{ kind, after: 'off', withinMs }]).expectations[0]!;
  assert.deepEqual(
    [judge('workload-ready', 10_000).ok, judge('workload-ready', 10_000).measuredMs],
    [true, 6000],
  );
  assert.equal(judge('workload-ready', 5_000).ok, false, 'too late');
  assert.deepEqual(
    [judge('addresses-freed', 1_000).ok, judge('addresses-freed', 1_000).measuredMs],
    [true, 500],
  );
  assert.equal(judge('no-duplicate-ip', null).ok, true);
  assert.equal(judge('no-restart', null).ok, true, judge('no-restart', null).detail);
  // web-b restarted, and a second pod took 10.78.1.21: both are caught.
  const bad: RunRecord = {
    ...rec,
    final: {
      ...rec.final!,
      workload: {
        pods: [
          ...after.pods.slice(0, 2),
          { ...before.pods[2]!, restarts: 1 },
          pod('web-d', 'Deployment', 'r3', '10.78.1.21'),
        ],
        allocations: after.allocations,
      },
    },
  };
  assert.match(judge('no-restart', null, bad).detail, /web-b on r2 restarted/);
  assert.match(judge('no-duplicate-ip', null, bad).detail, /10\.78\.1\.21 held twice/);
});

test('no-lost-writes fails when an acknowledged write older than the bound is missing, and without a writer', () => {
  const acked = [8_000, 9_000, 9_700, 9_950].map((ms, i) => ({
    seq: i,
    name: `rpo-${i}`,
    ackedAt: T + ms,
    resourceVersion: String(100 + i),
  }));
  const judge = (present: string[] | null, withinMs = 1000) =>
    analyse({ ...cleanRun(), writes: { acked, present } }, [
      { kind: 'no-lost-writes', after: 'off', withinMs },
    ]).expectations[0]!;
  const all = judge(acked.map((w) => w.name));
  assert.deepEqual([all.ok, all.measuredMs, all.detail], [true, 0, '0 of 4 acknowledged writes lost']);
  // The last two (300 ms and 50 ms before the power loss) lost: within a 1 s bound.
  const recent = judge(['rpo-0', 'rpo-1']);
  assert.deepEqual([recent.ok, recent.measuredMs], [true, 300]);
  // One acknowledged two seconds before the power loss lost: beyond the bound.
  const old = judge(['rpo-1', 'rpo-2', 'rpo-3']);
  assert.deepEqual([old.ok, old.measuredMs], [false, 2000]);
  // The bound is inclusive: exactly one second passes a 1 s bound, not a 999 ms one.
  assert.equal(judge(['rpo-0', 'rpo-2', 'rpo-3']).ok, true);
  assert.equal(judge(['rpo-0', 'rpo-2', 'rpo-3'], 999).ok, false);
  assert.equal(judge(null).ok, false);
  assert.equal(
    analyse(cleanRun(), [{ kind: 'no-lost-writes', after: 'off', withinMs: 1000 }]).expectations[0]!.detail,
    'the run had no writer',
  );
});
